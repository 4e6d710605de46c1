"""The tutorial's domain: a library lends books. Events, commands and a decider; no I/O at all."""

from dataclasses import dataclass, replace

from ilji.app import AggregateType, CommandRejected, Decider, EventRegistry
from ilji.testing import given

# --8<-- [start:events]
events = EventRegistry()


@events.register
@dataclass(frozen=True)
class BookAdded:
    title: str


@events.register
@dataclass(frozen=True)
class BookLent:
    member: str


@events.register
@dataclass(frozen=True)
class BookReturned:
    member: str


BookEvent = BookAdded | BookLent | BookReturned
# --8<-- [end:events]


# --8<-- [start:commands]
@dataclass(frozen=True)
class AddBook:
    title: str


@dataclass(frozen=True)
class LendBook:
    member: str


@dataclass(frozen=True)
class ReturnBook:
    member: str


BookCommand = AddBook | LendBook | ReturnBook


class BookNotFound(CommandRejected):
    code = "book-not-found"


class LoanRefused(CommandRejected):
    code = "loan-refused"


# --8<-- [end:commands]


# --8<-- [start:state]
@dataclass(frozen=True)
class Book:
    title: str | None = None  # None: never added
    borrower: str | None = None  # None: on the shelf


def evolve(book: Book, event: BookEvent) -> Book:
    match event:
        case BookAdded(title):
            return Book(title=title)
        case BookLent(member):
            return replace(book, borrower=member)
        case BookReturned():
            return replace(book, borrower=None)


# --8<-- [end:state]


# --8<-- [start:decide]
def decide(command: BookCommand, book: Book) -> list[BookEvent]:
    if isinstance(command, AddBook):
        if book.title is None:
            return [BookAdded(command.title)]
        if book.title == command.title:
            return []  # the same request again: already done
        raise LoanRefused(f"this id is taken by {book.title!r}")
    if book.title is None:
        raise BookNotFound("no such book")
    if isinstance(command, LendBook):
        if book.borrower == command.member:
            return []  # asked twice: the member has it already
        if book.borrower is not None:
            raise LoanRefused(f"{book.title!r} is lent to {book.borrower}")
        return [BookLent(command.member)]
    if book.borrower != command.member:
        raise LoanRefused(f"{command.member} does not have {book.title!r}")
    return [BookReturned(command.member)]


decider = Decider(decide, evolve, Book)
book_type = AggregateType("book", decider, events)  # streams book-<id>
# --8<-- [end:decide]


# --8<-- [start:test]
def main() -> None:
    """The rules on plain values: given events, when a command, then events."""
    added: list[BookEvent] = [BookAdded("Dune")]
    lent: list[BookEvent] = [*added, BookLent("jiwoo")]
    given(decider, added).when(LendBook("jiwoo")).then([BookLent("jiwoo")])
    given(decider, lent).when(LendBook("mina")).then_raises(LoanRefused)
    given(decider, lent).when(LendBook("jiwoo")).then_nothing()  # a repeat
    given(decider, lent).when(ReturnBook("mina")).then_raises(LoanRefused)
    given(decider, []).when(LendBook("jiwoo")).then_raises(BookNotFound)
    print("the rules hold")


if __name__ == "__main__":
    main()
# --8<-- [end:test]

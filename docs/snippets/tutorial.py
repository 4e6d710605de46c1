"""The tutorial's library: books lent and returned, end to end with the pieces Ilji has today."""

import asyncio
from dataclasses import dataclass

from ilji import NO_STREAM, EventStore, MemoryEventStore, NewEvent, RecordedEvent, WrongExpectedVersion


# --8<-- [start:commands]
@dataclass(frozen=True)
class LendBook:
    book: str
    member: str


@dataclass(frozen=True)
class ReturnBook:
    book: str
    member: str


# --8<-- [end:commands]


# --8<-- [start:state]
@dataclass(frozen=True)
class Book:
    """What the rules need to know about one book: is it on the shelf, and who has it."""

    exists: bool = False
    borrower: str | None = None


def evolve(book: Book, event: RecordedEvent) -> Book:
    """Apply one stored event to the state; no checks here, events are facts."""
    if event.type == "BookAdded":
        return Book(exists=True)
    if event.type == "BookLent":
        return Book(exists=True, borrower=event.data["member"])
    if event.type == "BookReturned":
        return Book(exists=True, borrower=None)
    return book  # an event type this code does not know yet changes nothing


# --8<-- [end:state]


# --8<-- [start:decide]
class Refused(Exception):
    """A command that breaks a rule; nothing is stored."""


def decide(command: LendBook | ReturnBook, book: Book) -> list[NewEvent]:
    """The rules: only a book on the shelf can be lent, only its borrower can return it."""
    if not book.exists:
        raise Refused(f"no book {command.book!r}")
    if isinstance(command, LendBook):
        if book.borrower is not None:
            raise Refused(f"{command.book!r} is lent to {book.borrower}")
        return [NewEvent("BookLent", {"member": command.member})]
    if book.borrower != command.member:
        raise Refused(f"{command.member} does not have {command.book!r}")
    return [NewEvent("BookReturned", {"member": command.member})]


# --8<-- [end:decide]


# --8<-- [start:handle]
async def handle(store: EventStore, command: LendBook | ReturnBook) -> int:
    """Load the book, decide, append with the version we decided on; retry on a conflict."""
    stream = f"book-{command.book}"
    while True:
        book, version = Book(), 0
        while page := await store.read_stream(stream, from_version=version + 1, limit=1000):
            for event in page:
                book, version = evolve(book, event), event.version
        events = decide(command, book)
        try:
            result = await store.append(stream, events, expected_version=version)
            return result.last_version
        except WrongExpectedVersion:
            continue  # another command changed this book meanwhile: decide again on the new state


# --8<-- [end:handle]


# --8<-- [start:readmodel]
class Loans:
    """A read model: which member has which books, built only from events."""

    def __init__(self) -> None:
        self.by_member: dict[str, set[str]] = {}
        self.position = 0

    def apply(self, event: RecordedEvent) -> None:
        book = event.stream.removeprefix("book-")
        if event.type == "BookLent":
            self.by_member.setdefault(event.data["member"], set()).add(book)
        elif event.type == "BookReturned":
            self.by_member[event.data["member"]].discard(book)
        self.position = event.position


async def keep_up_to_date(store: EventStore, loans: Loans, ready: asyncio.Event, until: int) -> None:
    async for event in store.follow(after=loans.position, category="book"):
        loans.apply(event)
        if loans.position >= until:
            ready.set()


# --8<-- [end:readmodel]


# --8<-- [start:main]
async def main() -> None:
    store = MemoryEventStore()  # PostgresEventStore.open(url) in production: same methods
    await store.append("book-dune", [NewEvent("BookAdded", {"title": "Dune"})], NO_STREAM)

    await handle(store, LendBook("dune", "jiwoo"))
    try:
        await handle(store, LendBook("dune", "mina"))
    except Refused as refused:
        print("refused:", refused)  # refused: 'dune' is lent to jiwoo
    await handle(store, ReturnBook("dune", "jiwoo"))
    last = await handle(store, LendBook("dune", "mina"))
    assert last == 4

    for event in await store.read_stream("book-dune"):
        print(event.version, event.type, event.data)
    # 1 BookAdded {'title': 'Dune'}
    # 2 BookLent {'member': 'jiwoo'}
    # 3 BookReturned {'member': 'jiwoo'}
    # 4 BookLent {'member': 'mina'}

    loans, ready = Loans(), asyncio.Event()
    head = (await store.read_all(after=0, limit=1000))[-1].position
    follower = asyncio.create_task(keep_up_to_date(store, loans, ready, until=head))
    await asyncio.wait_for(ready.wait(), timeout=2)
    follower.cancel()
    print(loans.by_member)  # {'jiwoo': set(), 'mina': {'dune'}}
    assert loans.by_member == {"jiwoo": set(), "mina": {"dune"}}


# --8<-- [end:main]

if __name__ == "__main__":
    asyncio.run(main())

"""The decisions of an append that did not go through, shared by both stores.

An append is refused when the stream's version is not as expected (`version_conflict`), and
is looked at again when some of its event ids are stored already: it is then either an exact
resend of an earlier append, answered with the stored result, or a reuse of ids, refused
with `DuplicateEventId` (`resolve_reused_ids`; `resolve_resent_call` for `append_streams`).
The PostgreSQL store and its in-memory twin find the stored ids in their own way and decide
here, so they agree on every answer and every message; nothing here does I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ilji.domain.errors import DuplicateEventId, WrongExpectedVersion
from ilji.domain.events import AppendResult, ExpectedVersion
from ilji.domain.validation import REUSED_BY_ANOTHER_CALL, REUSED_IN_PART

#: Why a batch that reuses stored ids is refused (`DuplicateEventId.reason`).
REUSED_PARTLY = "the batch overlaps stored events only in part"
REUSED_IN_ANOTHER_STREAM = "they belong to another stream"
REUSED_IN_ANOTHER_BATCH = "they were stored by another batch or in another order"


def version_conflict(
    stream: str, expected: ExpectedVersion, actual: int, part: int | None = None
) -> WrongExpectedVersion:
    """The error of an append whose expected version did not hold (`part`: its index in a call)."""
    label = expected if isinstance(expected, int) else expected.value
    if part is None:
        return WrongExpectedVersion(stream, label, actual)
    return WrongExpectedVersion(stream, label, actual, part=part)


@dataclass(frozen=True, slots=True)
class StoredId:
    """Where an event id of an append was found stored."""

    stream: str
    version: int
    position: int
    #: The event right before it in the global log was stored by the same append.
    joined_before: bool
    #: The event right after it in the global log was stored by the same append.
    joined_after: bool


def resolve_reused_ids(
    stream: str, ids: Sequence[uuid.UUID], found: Mapping[uuid.UUID, StoredId]
) -> AppendResult | None:
    """Decide what an append of `ids` to `stream` means, given where its ids are stored.

    None: none of the ids is stored (a plain version conflict). An `AppendResult`
    (`idempotent=True`): the whole batch is stored in this stream, in this order, as one
    earlier append and nothing else (an exact retry). Otherwise `DuplicateEventId`.
    `found` may hold other ids too (the other parts of a call); only `ids` are looked up.
    """
    stored = [found[i] for i in ids if i in found]
    if not stored:
        return None
    reused = [str(i) for i in ids if i in found]
    if len(stored) != len(ids):
        raise DuplicateEventId(stream, reused, REUSED_PARTLY)
    if any(s.stream != stream for s in stored):
        raise DuplicateEventId(stream, reused, REUSED_IN_ANOTHER_STREAM)
    first, last = stored[0], stored[-1]
    # One earlier append, whole: consecutive versions and positions, every event after the
    # first joined to the one before it, and nothing of that append before or after them.
    one_append = (
        [s.version for s in stored] == list(range(first.version, first.version + len(ids)))
        and [s.position for s in stored] == list(range(first.position, first.position + len(ids)))
        and not first.joined_before
        and all(s.joined_before for s in stored[1:])
        and not last.joined_after
    )
    if not one_append:
        raise DuplicateEventId(stream, reused, REUSED_IN_ANOTHER_BATCH)
    return AppendResult(
        stream=stream,
        first_version=first.version,
        last_version=last.version,
        first_position=first.position,
        last_position=last.position,
        idempotent=True,
    )


def resolve_resent_call(
    parts: Sequence[tuple[str, Sequence[uuid.UUID]]],
    found: Mapping[uuid.UUID, StoredId],
    same_call: Callable[[list[AppendResult]], bool],
) -> list[AppendResult]:
    """Decide what an `append_streams` call of `(stream, ids)` parts that met stored ids means.

    It is an exact resend, answered with the stored results, only if every part is stored as
    that part (`resolve_reused_ids`) and `same_call` says the results were stored by one call,
    in part order (each store knows how it keeps a call together). Otherwise
    `DuplicateEventId` naming the first part that reused ids.
    """
    results: list[AppendResult | None] = []
    for k, (stream, ids) in enumerate(parts):
        try:
            results.append(resolve_reused_ids(stream, ids, found))
        except DuplicateEventId as exc:
            raise DuplicateEventId(exc.stream, exc.event_ids, exc.reason, part=k) from None
    stored = [r for r in results if r is not None]
    if len(stored) == len(parts) and same_call(stored):
        return stored
    k = next(k for k, r in enumerate(results) if r is not None)
    reason = REUSED_BY_ANOTHER_CALL if len(stored) == len(parts) else REUSED_IN_PART
    stream, ids = parts[k]
    raise DuplicateEventId(stream, [str(i) for i in ids], reason, part=k)

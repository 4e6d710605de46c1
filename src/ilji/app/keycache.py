"""The subject keys one process holds: a bounded cache, and the fence that lets a forget win.

`ilji.app.personal` uses both; they are here so that what a process may remember about keys,
and for how long, can be read in one place.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from ilji.store.subject_keys import SubjectKey


class KeyCache:
    """Recently used keys (and known absences) by subject: bounded in size and in age.

    The age bound is how long another process may keep reading a subject after it was
    forgotten elsewhere (the forgetting process itself evicts at once).
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._entries: OrderedDict[str, tuple[float, SubjectKey | None]] = OrderedDict()

    def get(self, subject: str) -> tuple[bool, SubjectKey | None]:
        """(True, the key or None for a known absence) if cached and young enough, else (False, None)."""
        entry = self._entries.get(subject)
        if entry is None or self.clock() - entry[0] > self.ttl:
            return False, None
        self._entries.move_to_end(subject)
        return True, entry[1]

    def put(self, subject: str, key: SubjectKey | None) -> None:
        """Remember a subject's key (None: it has none), dropping the least recently used."""
        self._entries[subject] = (self.clock(), key)
        self._entries.move_to_end(subject)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict(self, subject: str) -> None:
        """Forget what is cached about `subject`."""
        self._entries.pop(subject, None)

    def __len__(self) -> int:
        return len(self._entries)


class ForgetFence:
    """Makes a forget win over the key lookups in flight when it happens, in this process.

    A lookup that started before a forget of its subject ended may have read the key before it
    was shredded, and may return after `forget_subject` did: its key must then be thrown away,
    not used or cached. Lookups get increasing tickets when they start and forgets a ticket
    when they end, so "started before that forget ended" is a comparison. A finished forget is
    remembered only while a lookup older than it is still running.
    """

    def __init__(self) -> None:
        self._tick = 0
        self._running: Counter[int] = Counter()  # tickets of lookups in flight
        # subject -> the ticket its forget ended at (None: a forget is running)
        self._forgets: dict[str, int | None] = {}

    def lookup_started(self) -> int:
        """A ticket for a key lookup about to start; hand it back to `lookup_ended`."""
        self._tick += 1
        self._running[self._tick] += 1
        return self._tick

    def lookup_ended(self, ticket: int) -> None:
        """The lookup holding `ticket` is over (its answer has been judged)."""
        self._running[ticket] -= 1
        if not self._running[ticket]:
            del self._running[ticket]
        self._prune()

    def overtaken(self, subject: str, ticket: int) -> bool:
        """Whether a forget of `subject` ran while the lookup holding `ticket` was in flight."""
        if subject not in self._forgets:
            return False
        ended = self._forgets[subject]
        return ended is None or ticket < ended

    def forget_started(self, subject: str) -> None:
        """A forget of `subject` begins: from now on no lookup in flight is trusted for it."""
        self._forgets[subject] = None

    def forget_ended(self, subject: str) -> None:
        """The forget of `subject` is over: lookups started before now stay untrusted for it."""
        self._tick += 1
        self._forgets[subject] = self._tick
        self._prune()

    def _prune(self) -> None:
        oldest = min(self._running, default=self._tick + 1)
        for subject, ended in list(self._forgets.items()):
            if ended is not None and ended < oldest:
                del self._forgets[subject]

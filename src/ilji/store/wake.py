"""When to look again: the waits of every loop that follows the log or retries the database.

Two schedules, shared by the store's followers (`follow_pages`) and the projection runners:

- `WakeSchedule`, for a follower that has caught up. A notification is only a hint, and it can
  come before the new events are visible: an older transaction that is still open keeps them
  behind the global log's visible bound. So after a wake-up that showed nothing new, the
  follower reads again soon (5 ms), then less and less often (the delay doubles up to the poll
  interval); once a read finds events, the next empty wake-up starts over at 5 ms. Without a
  notification it waits for the poll interval, which is what makes progress when
  notifications are lost.
- `Backoff`, for a loop whose database call failed: wait 0.1 s, doubling up to 5 s, and start
  over after a success, so that an outage is not hammered and a blip costs little.
"""

from __future__ import annotations

#: After a wake-up that showed nothing new, the first read again comes this soon (seconds).
FIRST_RETRY_DELAY = 0.005


class WakeSchedule:
    """How long a caught-up follower of the log waits before its next read; see the module docstring."""

    __slots__ = ("_delay", "_first", "_pending", "poll_interval")

    def __init__(self, poll_interval: float, *, first: float = FIRST_RETRY_DELAY) -> None:
        self.poll_interval = poll_interval
        self._first = first
        self._delay = first
        # Woken, but the reads since have shown nothing new yet.
        self._pending = False

    def found(self) -> None:
        """The last read returned events: nothing is pending any more."""
        self._pending, self._delay = False, self._first

    def woken(self) -> None:
        """A notification came: read again, and soon again if that read shows nothing."""
        self._pending = True

    def next_wait(self) -> float:
        """Seconds to wait (for a notification) before the next read."""
        if not self._pending:
            return self.poll_interval
        wait, self._delay = self._delay, min(self._delay * 2, self.poll_interval)
        return min(wait, self.poll_interval)


class Backoff:
    """Growing pauses between retries of a failing call: `first`, doubling, at most `cap` seconds."""

    __slots__ = ("_delay", "cap", "first")

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self._delay = first

    def next(self) -> float:
        """The pause before the next retry (each call doubles the one after it)."""
        pause, self._delay = self._delay, min(self._delay * 2, self.cap)
        return pause

    def reset(self) -> None:
        """The call succeeded: the next failure waits `first` again."""
        self._delay = self.first

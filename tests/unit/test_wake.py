"""The shared wake-up and retry schedules of the log's followers (ilji.store.wake)."""

from __future__ import annotations

import pytest

from ilji.store.wake import FIRST_RETRY_DELAY, Backoff, WakeSchedule


def test_a_follower_without_notifications_waits_the_poll_interval() -> None:
    schedule = WakeSchedule(1.0)
    assert [schedule.next_wait() for _ in range(3)] == [1.0, 1.0, 1.0]


def test_a_wake_up_that_shows_nothing_is_read_again_soon_then_less_often() -> None:
    schedule = WakeSchedule(0.1)
    schedule.woken()
    waits = [schedule.next_wait() for _ in range(7)]
    assert waits == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.1])
    assert waits[0] == FIRST_RETRY_DELAY


def test_events_found_start_the_next_wake_up_over() -> None:
    schedule = WakeSchedule(1.0)
    schedule.woken()
    schedule.next_wait()
    schedule.next_wait()
    schedule.found()
    assert schedule.next_wait() == 1.0, "nothing pending after a read that found events"
    schedule.woken()
    assert schedule.next_wait() == FIRST_RETRY_DELAY


def test_no_wait_is_longer_than_the_poll_interval() -> None:
    schedule = WakeSchedule(0.002)
    schedule.woken()
    assert schedule.next_wait() == 0.002


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(8)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    backoff.reset()
    assert backoff.next() == 0.1
    assert [Backoff(1.0, cap=3.0).next() for _ in range(2)] == [1.0, 1.0], "each Backoff has its own state"

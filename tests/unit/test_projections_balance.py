"""Sharing partitions between workers (ilji.projections.balance), without a database."""

from __future__ import annotations

from ilji.projections.balance import Balancer


def balancer_owning(owned: dict[tuple[str, int], list[int]]) -> Balancer:
    return Balancer(lambda name, version: owned.get((name, version), []))


def test_the_share_is_the_partitions_over_the_live_workers_rounded_up() -> None:
    balancer = balancer_owning({})
    balancer.set_partitions("seats", 1, 4)
    assert balancer.share("seats", 1) == 4, "alone (or before the first heartbeat count): every partition"
    balancer.set_live_workers("seats", {1: 3})
    assert balancer.share("seats", 1) == 2
    balancer.set_live_workers("seats", {1: 8})
    assert balancer.share("seats", 1) == 1
    balancer.set_live_workers("seats", {1: 0})
    assert balancer.share("seats", 1) == 4, "no live worker counted: this one still runs them"


def test_a_worker_takes_partitions_until_its_share_is_full() -> None:
    owned: dict[tuple[str, int], list[int]] = {("seats", 1): [0]}
    balancer = balancer_owning(owned)
    balancer.set_partitions("seats", 1, 4)
    balancer.set_live_workers("seats", {1: 2})
    assert balancer.may_acquire("seats", 1)
    owned[("seats", 1)] = [0, 3]
    assert not balancer.may_acquire("seats", 1)


def test_above_its_share_a_worker_gives_back_its_highest_partition_only() -> None:
    owned = {("seats", 1): [0, 1, 3]}
    balancer = balancer_owning(owned)
    balancer.set_partitions("seats", 1, 4)
    balancer.set_live_workers("seats", {1: 2})
    assert [p for p in range(4) if balancer.should_release("seats", 1, p)] == [3]
    owned[("seats", 1)] = [0, 1]
    assert not any(balancer.should_release("seats", 1, p) for p in range(4)), "at its share: keeps them"


def test_versions_and_projections_are_balanced_apart() -> None:
    owned = {("seats", 1): [0, 1], ("seats", 2): []}
    balancer = balancer_owning(owned)
    balancer.set_partitions("seats", 1, 2)
    balancer.set_partitions("seats", 2, 2)
    balancer.set_live_workers("seats", {1: 2, 2: 1})
    assert balancer.should_release("seats", 1, 1)
    assert balancer.may_acquire("seats", 2), "the rebuild's version has its own share"
    assert balancer.may_acquire("orders", 1), (
        "a version whose partition count is not known yet is not limited"
    )
    assert not balancer.should_release("orders", 1, 0)

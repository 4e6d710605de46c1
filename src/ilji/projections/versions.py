"""Which versions of a projection this worker's code may run: the rule for rolling deploys.

Each version of a projection has a row (ilji.projection_versions) created once, by the first
worker that needs it, with two things fixed from then on:

- its **partition count**: the partition of a stream is CRC-32 of its name modulo the count,
  so another count under the same checkpoints would hand streams to partitions that read the
  log again from position 0 (events applied twice);
- the **code version** that builds it: the `version` of the code that created it. A version
  asked for with `ilji projections rebuild` is built by the serving version's code.

A worker runs a version only when that version's code version equals its code's `version`,
and only with the stored partition count. So during a rolling deploy the pods with the older
code keep serving until the cutover and then stand idle (they take no leases), and the pods
with the newer code build the new version and never touch the serving one. Code that asks for
another partition count for an existing version is refused, with an error the worker logs and
records for `ilji projections status`: changing the count takes a new `version`.

`plan` is pure (the worker feeds it what it read from the database), so the rule is tested
without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ilji.projections.projection import Projection

WorkerState = Literal["serving", "building", "idle", "refused"]
"""What a worker does for a projection: serves the active version (and maybe builds the next),
only builds a new version, stands idle (its code is older than the serving version's), or
refuses (a conflict only a deploy can resolve: see `VersionPlan.error`)."""


class StoredVersion(NamedTuple):
    """A version's row: fixed partition count, and the code version that builds it."""

    partitions: int
    code_version: int | None


@dataclass(frozen=True, slots=True)
class VersionPlan:
    """What this code does for one projection, given the database's versions."""

    #: Versions to run (serving first, then the one being built).
    run: tuple[int, ...]
    #: The version this code builds and cuts over to when it has caught up (None: none).
    target: int | None
    state: WorkerState
    #: Why this code refuses a version (a deploy mistake to fix); None when it refuses nothing.
    error: str | None
    #: Versions to create before planning again (this code is the first to need them).
    create: tuple[int, ...] = ()


def _built_by(stored: StoredVersion, code: int, version: int) -> bool:
    # A version from before code versions were recorded belongs to any code not above it.
    if stored.code_version is None:
        return code <= version
    return stored.code_version == code


def plan(
    projection: Projection,
    active: int,
    requested: int | None,
    stored: Mapping[int, StoredVersion],
) -> VersionPlan:
    """The versions `projection`'s code may run now; see the module docstring."""
    code, name = projection.version, projection.name
    errors: list[str] = []

    def count_ok(version: int) -> bool:
        partitions = stored[version].partitions
        if partitions == projection.partitions:
            return True
        errors.append(
            f"projection {name} version {version} has {partitions} partition(s), fixed when it was "
            f"created; this code asks for {projection.partitions} partitions: to change the count, "
            f"raise `version` (the new version is built beside the serving one)"
        )
        return False

    create = []
    if active not in stored and code == active:
        create.append(active)
    serving = active in stored and _built_by(stored[active], code, active)
    run: list[int] = []
    target: int | None = None
    if serving and count_ok(active):
        run.append(active)
    if code > active:
        # Newer code: build version `code` beside the serving one, never touching it.
        if code not in stored:
            create.append(code)
        elif not _built_by(stored[code], code, code):
            errors.append(
                f"projection {name} version {code} was created by code version "
                f"{stored[code].code_version} (`ilji projections rebuild`); give this code a "
                f"version above {max(stored)}"
            )
        elif count_ok(code):
            target = code
    elif serving and requested is not None and requested > active:
        # `ilji projections rebuild`: the serving code builds the requested version.
        if requested not in stored:
            create.append(requested)
        elif _built_by(stored[requested], code, requested) and count_ok(requested):
            target = requested
    elif not serving and active in stored:
        built_by = stored[active].code_version
        if built_by is not None and built_by < code:
            errors.append(
                f"projection {name} serves version {active}, created by code version {built_by} "
                f"(`ilji projections rebuild`); give this code a version above {max(stored)}"
            )
    if target is not None:
        run.append(target)
    state: WorkerState
    if active in run:
        state = "serving"
    elif target is not None:
        state = "building"
    else:
        state = "refused" if errors else "idle"
    return VersionPlan(
        run=tuple(run),
        target=target,
        state=state,
        error="; ".join(errors) or None,
        create=tuple(create),
    )

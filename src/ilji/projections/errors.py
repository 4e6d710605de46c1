"""Errors of the projections machinery (all under `IljiError`)."""

from __future__ import annotations

from ilji.domain.errors import IljiError


class ProjectionError(IljiError):
    """Something about a projection went wrong."""

    code = "projection-error"


class ProjectionNotFound(ProjectionError):
    """No projection of that name is registered in the database."""

    code = "projection-not-found"

    def __init__(self, name: str) -> None:
        super().__init__(f"projection {name!r} is not registered", projection=name)
        self.name = name


class LeaseLost(ProjectionError):
    """This worker no longer owns the partition: another worker took it over (or it was released)."""

    code = "lease-lost"


class WaitTimeout(ProjectionError):
    """`wait_for_position` gave up: the projection did not reach the position in time."""

    code = "projection-wait-timeout"

    def __init__(self, name: str, position: int, timeout: float) -> None:
        super().__init__(
            f"projection {name!r} did not reach position {position} within {timeout:g} s",
            projection=name,
            position=position,
        )
        self.name = name
        self.position = position

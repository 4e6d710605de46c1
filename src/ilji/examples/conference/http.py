"""HTTP routes of the conference example (mounted by `ilji serve --example conference`).

The stream version travels as the `ETag`, the optimistic-concurrency token a client may send
back in `If-Match`, read as Ilji's own API reads it: a stale version is a 412, a malformed one
a 400, and `*` asks only that the conference exists. The routes catch no business rule's
refusal: a `CommandRejected` reaches the server's problem table, which answers `409 Conflict`
with the rule's code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, HTTPException, Response
from pydantic import BaseModel, Field

from ilji import EventStore, SnapshotStore, WrongExpectedVersion
from ilji.app import CommandContext
from ilji.examples.conference.domain import (
    CancelReservation,
    CreateConference,
    ReserveSeats,
    repository,
)
from ilji.server import PreconditionFailed, etag, expected_from_if_match


class CreateBody(BaseModel):
    """Body of `PUT /conferences/{id}`."""

    name: str = Field(min_length=1, max_length=200)
    seats: int = Field(ge=1, le=100_000)


class ReserveBody(BaseModel):
    """Body of `POST /conferences/{id}/reservations`."""

    reservation_id: str = Field(min_length=1, max_length=100)
    quantity: int = Field(default=1, ge=1)


def router(store: EventStore, snapshots: SnapshotStore | None = None) -> APIRouter:
    """The conference routes on `store`."""
    conferences = repository(store, snapshots, max_retries=30)
    api = APIRouter(prefix="/examples/conference", tags=["example: conference"])

    async def version_asked(conference_id: str, if_match: str | None) -> int | None:
        """The version `If-Match` says the client decided on; None when any version will do.

        `*` (RFC 9110) asks only that the conference exists, at whatever version: a 412 when
        it does not, as on Ilji's own API. A malformed value is a `ValidationError` (a 400).
        """
        if if_match is None:
            return None
        expected = expected_from_if_match(if_match)
        if isinstance(expected, int):
            return expected
        loaded = await conferences.load(conference_id)
        if loaded.version == 0:
            raise PreconditionFailed(conferences.stream(conference_id), str(expected), 0)
        return None

    async def run(
        conference_id: str, command: Any, response: Response, if_match: str | None = None
    ) -> dict[str, Any]:
        expected = await version_asked(conference_id, if_match)
        try:
            result = await conferences.handle(
                conference_id, command, CommandContext(user="http"), expected_version=expected
            )
        except WrongExpectedVersion as exc:
            if expected is None:
                raise  # every retry lost the race: a conflict (409), no precondition failed
            # The client decided on a version that is no longer current: its `If-Match` failed
            # (412), and it must look again.
            raise PreconditionFailed.of(exc) from None
        response.headers["ETag"] = etag(result.version)
        return {"version": result.version, "events": [type(e).__name__ for e in result.events]}

    @api.put("/conferences/{conference_id}")
    async def create(conference_id: str, body: CreateBody, response: Response) -> dict[str, Any]:
        """Create a conference (repeating the same request is harmless)."""
        return await run(conference_id, CreateConference(body.name, body.seats), response)

    @api.post("/conferences/{conference_id}/reservations")
    async def reserve(
        conference_id: str, body: ReserveBody, response: Response, if_match: str | None = Header(None)
    ) -> dict[str, Any]:
        """Reserve seats (with `If-Match: "<version>"`, only if the conference is still at that version).

        `If-Match: *` asks only that the conference exists.
        """
        command = ReserveSeats(body.reservation_id, body.quantity)
        return await run(conference_id, command, response, if_match)

    @api.delete("/conferences/{conference_id}/reservations/{reservation_id}")
    async def cancel(
        conference_id: str, reservation_id: str, response: Response, if_match: str | None = Header(None)
    ) -> dict[str, Any]:
        """Cancel a reservation (a compensating event); `If-Match` as for reservations."""
        return await run(conference_id, CancelReservation(reservation_id), response, if_match)

    @api.get("/conferences/{conference_id}")
    async def show(conference_id: str, response: Response, version: int | None = None) -> dict[str, Any]:
        """The conference now, or as of `?version=`."""
        if version is None:
            loaded = await conferences.load(conference_id)
        else:
            loaded = await conferences.state_at(conference_id, version=version)
        if not loaded.state.exists:
            raise HTTPException(404, detail="no such conference")
        response.headers["ETag"] = etag(loaded.version)
        state = loaded.state
        return {
            "name": state.name,
            "seats": state.seats,
            "available": state.available,
            "reservations": state.reservations,
            "version": loaded.version,
        }

    @api.get("/conferences/{conference_id}/history")
    async def history(conference_id: str) -> list[dict[str, Any]]:
        """Every event with the seats available after it."""
        return [
            {
                "version": e.recorded.version,
                "type": e.recorded.type,
                "data": e.recorded.data,
                "recorded_at": e.recorded.recorded_at.isoformat(),
                "available": e.state.available,
            }
            for e in await conferences.history(conference_id)
        ]

    return api

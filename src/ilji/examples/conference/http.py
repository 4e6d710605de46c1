"""HTTP routes of the conference example (mounted by `ilji serve --example conference`).

The stream version travels as the `ETag`, the optimistic-concurrency token a client may send
back; business-rule refusals become `409 Conflict` with the rule's code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, HTTPException, Response
from pydantic import BaseModel, Field

from ilji import EventStore, SnapshotStore, WrongExpectedVersion
from ilji.app import CommandContext, CommandRejected
from ilji.examples.conference.domain import (
    CancelReservation,
    CreateConference,
    ReserveSeats,
    repository,
)


class CreateBody(BaseModel):
    """Body of `PUT /conferences/{id}`."""

    name: str = Field(min_length=1, max_length=200)
    seats: int = Field(ge=1, le=100_000)


class ReserveBody(BaseModel):
    """Body of `POST /conferences/{id}/reservations`."""

    reservation_id: str = Field(min_length=1, max_length=100)
    quantity: int = Field(default=1, ge=1)


def _version_of(if_match: str | None) -> int | None:
    """The stream version in an `If-Match` header (`"3"` or `3`), None when absent or `*`."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise HTTPException(400, detail='If-Match must be a stream version in quotes, like "3"')
    return int(text)


def router(store: EventStore, snapshots: SnapshotStore | None = None) -> APIRouter:
    """The conference routes on `store`."""
    conferences = repository(store, snapshots, max_retries=30)
    api = APIRouter(prefix="/examples/conference", tags=["example: conference"])

    async def run(
        conference_id: str, command: Any, response: Response, if_match: str | None = None
    ) -> dict[str, Any]:
        expected = _version_of(if_match)
        try:
            result = await conferences.handle(
                conference_id, command, CommandContext(user="http"), expected_version=expected
            )
        except CommandRejected as exc:
            raise HTTPException(409, detail={"code": exc.code, "message": str(exc)}) from exc
        except WrongExpectedVersion as exc:
            # The client decided on a version that is no longer current: it must look again.
            raise HTTPException(412, detail={"code": exc.code, "message": str(exc)}) from exc
        response.headers["ETag"] = f'"{result.version}"'
        return {"version": result.version, "events": [type(e).__name__ for e in result.events]}

    @api.put("/conferences/{conference_id}")
    async def create(conference_id: str, body: CreateBody, response: Response) -> dict[str, Any]:
        """Create a conference (repeating the same request is harmless)."""
        return await run(conference_id, CreateConference(body.name, body.seats), response)

    @api.post("/conferences/{conference_id}/reservations")
    async def reserve(
        conference_id: str, body: ReserveBody, response: Response, if_match: str | None = Header(None)
    ) -> dict[str, Any]:
        """Reserve seats (with `If-Match: "<version>"`, only if the conference is still at that version)."""
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
        response.headers["ETag"] = f'"{loaded.version}"'
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

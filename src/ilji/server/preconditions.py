"""HTTP preconditions on a stream's version: `ETag` out, `If-Match` in (RFC 9110).

A stream's version is its entity tag: an append or a read answers `ETag: "3"`, and an append
sent with `If-Match: "3"` is stored only while the stream is still at version 3. A failed
`If-Match` is a 412, where the same conflict stated in the body (`expected_version`) is a 409.
"""

from __future__ import annotations

from ilji.domain.errors import ValidationError, WrongExpectedVersion
from ilji.domain.events import EXISTS, MAX_SAFE_POSITION, ExpectedVersion


class PreconditionFailed(WrongExpectedVersion):
    """A wrong expected version that the client stated as `If-Match` (HTTP 412, RFC 9110).

    The same conflict as a wrong `expected_version` in the body (409), named by the status
    HTTP gives a failed precondition header, so generic HTTP clients and caches understand it.
    """

    @classmethod
    def of(cls, exc: WrongExpectedVersion) -> PreconditionFailed:
        """The same conflict, as a failed `If-Match`."""
        return cls(exc.stream, exc.expected, exc.actual)


def etag(version: int) -> str:
    """A stream version as an `ETag` value: `"3"`."""
    return f'"{version}"'


def expected_from_if_match(header: str) -> ExpectedVersion:
    """The expected version an `If-Match` value states: `3`, `"3"`, `W/"3"`, or `*` (the stream exists).

    Anything else is a `ValidationError` naming the header (a 400).
    """
    value = header.strip()
    if value == "*":
        return EXISTS
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isascii() or not value.isdigit() or int(value) > MAX_SAFE_POSITION:
        raise ValidationError("If-Match", 'must be a stream version, like 3 or "3", or *')
    return int(value)

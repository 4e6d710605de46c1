"""Subject keys for crypto-shredding: the `KeyStore` port, its PostgreSQL table and in-memory twin.

Each data subject (a customer, a person) gets one random 256-bit key the first time personal
data about them is written. Forgetting the subject deletes the key bytes and leaves a tombstone
row (when, by whom, why), which is the audit record of the erasure and refuses new keys for the
subject. What the keys encrypt, and how, is the app layer's business (`ilji.app.personal`); this
module only keeps them. An external KMS fits behind the same three-method `KeyStore` protocol.

Key bytes never appear in a `repr`, a log line or an error message.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from ilji.domain.errors import ConflictError, StoreUnavailable, ValidationError
from ilji.store import sql
from ilji.store.database import Database

#: AES-256: the key length in bytes.
KEY_BYTES = 32

_CREATE = sql.load("subject_key_create")
_GET = sql.load("subject_key_get")
_FORGET = sql.load("subject_key_forget")
_TOMBSTONE = sql.load("subject_key_tombstone")


class SubjectForgotten(ConflictError):
    """Personal data was about to be written for a subject who has been forgotten."""

    code = "subject-forgotten"

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"subject {subject!r} has been forgotten: no new personal data is stored for it",
            subject=subject,
        )
        self.subject = subject


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """A subject's live key. `key` is left out of `repr` so that it never reaches a log."""

    subject: str
    key_id: uuid.UUID
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ForgottenSubject:
    """The audit record of an erasure: which key was shredded, when, by whom and why.

    `key_deleted` is true for the call that deleted key bytes, false when the subject was
    already forgotten or never had a key (the tombstone is stored all the same).
    """

    subject: str
    key_id: uuid.UUID
    forgotten_at: datetime
    forgotten_by: str | None
    reason: str | None
    key_deleted: bool


@runtime_checkable
class KeyStore(Protocol):
    """Where subject keys live (a database table here, or an external KMS)."""

    async def key_for_writing(self, subject: str) -> SubjectKey:
        """The subject's key, created on first use; raises `SubjectForgotten` after `forget`."""
        ...

    async def keys_for_reading(self, subjects: Iterable[str]) -> Mapping[str, SubjectKey]:
        """The live keys of these subjects; forgotten and unknown subjects are simply absent."""
        ...

    async def forget(
        self, subject: str, *, by: str | None = None, reason: str | None = None
    ) -> ForgottenSubject:
        """Delete the subject's key for good and record the erasure (idempotent)."""
        ...


def _check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject:
        raise ValidationError("subject", "must be a non-empty string")
    return subject


def new_key() -> SubjectKey:
    """Fresh key material (from the OS's CSPRNG) for a subject yet to be named."""
    return SubjectKey("", uuid.uuid4(), secrets.token_bytes(KEY_BYTES))


# A row of ilji.subject_keys, in the column order of the subject_key_*.sql statements.
_Row = tuple[str, uuid.UUID, bytes | None, datetime, datetime | None, str | None, str | None]


def _live(row: _Row) -> SubjectKey | None:
    subject, key_id, key = row[0], row[1], row[2]
    return SubjectKey(subject, key_id, bytes(key)) if key is not None else None


def _audit(row: _Row, key_deleted: bool) -> ForgottenSubject:
    assert row[4] is not None, "a forgotten subject's row has forgotten_at"
    return ForgottenSubject(row[0], row[1], row[4], row[5], row[6], key_deleted)


class PostgresKeyStore:
    """Subject keys in the `ilji.subject_keys` table, on the event store's database (`store.database`)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def _one(self, query: bytes, params: Mapping[str, Any]) -> _Row | None:
        async with self.database.connection() as conn:
            cur = await conn.execute(query, params)
            row: _Row | None = await cur.fetchone()
        return row

    async def _rows(self, subjects: list[str]) -> list[_Row]:
        async with self.database.connection() as conn:
            cur = await conn.execute(_GET, {"subjects": subjects})
            rows: list[_Row] = await cur.fetchall()
        return rows

    async def key_for_writing(self, subject: str) -> SubjectKey:
        """The subject's key: inserted if missing (race-safe), then read back."""
        _check_subject(subject)
        fresh = new_key()
        params = {"subject": subject, "key_id": fresh.key_id, "key": fresh.key}
        row = await self._one(_CREATE, params)
        if row is None:
            # Someone else's row is there (a key, a tombstone, or the winner of a race):
            # everyone must use that one, never the key this call generated.
            rows = await self._rows([subject])
            if not rows:  # pragma: no cover - rows are never deleted
                raise StoreUnavailable(f"the key row of subject {subject!r} vanished")
            row = rows[0]
        key = _live(row)
        if key is None:
            raise SubjectForgotten(subject)
        return key

    async def keys_for_reading(self, subjects: Iterable[str]) -> dict[str, SubjectKey]:
        """Live keys by subject, in one query."""
        wanted = sorted({_check_subject(s) for s in subjects})
        if not wanted:
            return {}
        return {key.subject: key for row in await self._rows(wanted) if (key := _live(row)) is not None}

    async def forget(
        self, subject: str, *, by: str | None = None, reason: str | None = None
    ) -> ForgottenSubject:
        """Shred the key (or store a tombstone for a subject without one); idempotent."""
        _check_subject(subject)
        params = {"subject": subject, "by": by, "reason": reason, "key_id": uuid.uuid4()}
        # Three lock-free steps, retried when a key is created between them: shred a live key;
        # else store a tombstone for a subject never seen; else the tombstone is already there.
        for _ in range(3):
            row = await self._one(_FORGET, params)
            if row is not None:
                return _audit(row, key_deleted=True)
            row = await self._one(_TOMBSTONE, params)
            if row is not None:
                return _audit(row, key_deleted=False)
            rows = await self._rows([subject])
            if rows and rows[0][2] is None:
                return _audit(rows[0], key_deleted=False)
        raise StoreUnavailable(f"subject {subject!r}: keys keep appearing while forgetting, try again")


@dataclass(slots=True)
class _MemoryRow:
    key_id: uuid.UUID
    key: bytes | None
    forgotten_at: datetime | None = None
    forgotten_by: str | None = None
    reason: str | None = None


class MemoryKeyStore:
    """The in-memory twin of `PostgresKeyStore`, for unit tests and examples."""

    def __init__(self) -> None:
        self._rows: dict[str, _MemoryRow] = {}

    async def key_for_writing(self, subject: str) -> SubjectKey:
        """The subject's key, created on first use."""
        _check_subject(subject)
        row = self._rows.get(subject)
        if row is None:
            fresh = new_key()
            row = self._rows[subject] = _MemoryRow(fresh.key_id, fresh.key)
        if row.key is None:
            raise SubjectForgotten(subject)
        return SubjectKey(subject, row.key_id, row.key)

    async def keys_for_reading(self, subjects: Iterable[str]) -> dict[str, SubjectKey]:
        """Live keys by subject."""
        found = {}
        for subject in {_check_subject(s) for s in subjects}:
            row = self._rows.get(subject)
            if row is not None and row.key is not None:
                found[subject] = SubjectKey(subject, row.key_id, row.key)
        return found

    async def forget(
        self, subject: str, *, by: str | None = None, reason: str | None = None
    ) -> ForgottenSubject:
        """Shred the key (or store a tombstone); idempotent."""
        _check_subject(subject)
        row = self._rows.get(subject)
        if row is not None and row.forgotten_at is not None:
            return ForgottenSubject(
                subject, row.key_id, row.forgotten_at, row.forgotten_by, row.reason, False
            )
        deleted = row is not None
        if row is None:
            row = self._rows[subject] = _MemoryRow(uuid.uuid4(), None)
        row.key, row.forgotten_at, row.forgotten_by, row.reason = None, datetime.now(UTC), by, reason
        return ForgottenSubject(subject, row.key_id, row.forgotten_at, by, reason, deleted)

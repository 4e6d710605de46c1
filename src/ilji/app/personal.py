"""Personal data in an append-only log: crypto-shredding.

Events are never changed or deleted, yet a person may ask to be forgotten. The answer is to
never store their personal data in the clear: each personal field is encrypted with a key of
its own subject (the person it is about), and forgetting the subject deletes that key. The
ciphertext stays in every event, replica and backup, but nobody can read it any more.

Marking a field (its type must admit `None`, which is what it reads as once erased):

    @registry.register
    @dataclass(frozen=True)
    class CustomerRegistered:
        customer_id: str
        email: Annotated[str | None, Personal(subject="customer_id")]
        plan: str

Writing: `PersonalData.encrypt` replaces each personal value by an envelope
`{"$personal": {"v": 1, "subject", "key_id", "nonce", "ciphertext"}}`: AES-256-GCM with a random
96-bit nonce, and associated data that binds the stored event type, the field name and the
subject, so an envelope copied into another field, event type or subject fails to open.
A `None` value is stored as `null`: there is nothing to protect.

Reading: `PersonalData.decrypt` opens the envelopes of the fields declared personal for the
stored event type, where the key exists. Where the key was shredded, the field becomes `None`
and its name is listed in the event's metadata under `"$erased"` (see `erased_fields`). The
choice of `None` over a sentinel object is deliberate: typed events decode it like any
optional value, deciders and projections keep working, and mypy makes every handler consider
the erased case. Only declared fields are opened: any writer can append a value that looks
like an envelope into another field, and that is data, not a reason to stop every reader.
Upcasters run after decryption (they see plain values or `None`); fields of stored shapes no
class describes any more are named with `legacy_fields`.

Forgetting wins over lookups in flight: once `forget_subject` returns, this process never
opens the subject's fields again, even with a key that a lookup started earlier brings back,
and a write whose key lookup overlapped the forget is refused with `SubjectForgotten`.

`PersonalDataStore` wraps any `EventStore` so that a `Repository` or a `ProjectionRunner` on
it encrypts and decrypts without knowing. Handlers of `ilji.projections`, which read the
database themselves, call `await personal.decrypt(event)`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import os
import time
import types
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ilji.app.errors import RegistryError
from ilji.app.keycache import ForgetFence, KeyCache
from ilji.app.registry import EventRegistry
from ilji.domain.errors import IljiError
from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from ilji.store.port import Direction, EventStore
from ilji.store.subject_keys import ForgottenSubject, KeyStore, SubjectForgotten, SubjectKey

if TYPE_CHECKING:
    # Imported where used (`_aead`): cryptography comes with the `personal` extra only.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

#: The only key of an encrypted field's JSON object.
ENVELOPE_KEY = "$personal"
#: The metadata key, on events read through `PersonalData`, listing the erased fields.
ERASED_KEY = "$erased"
#: The envelope format; part of the associated data, so a future format cannot be confused with it.
ENVELOPE_VERSION = 1

_NONCE_BYTES = 12  # 96 bits: the nonce size GCM is designed for


class PersonalDataError(IljiError):
    """Personal data that cannot be handled: a bad declaration, a missing subject, a forged envelope."""

    code = "personal-data-error"


@dataclass(frozen=True, slots=True)
class Personal:
    """Marks a dataclass field as personal data about the subject named by field `subject`.

    Use it inside `Annotated`: `email: Annotated[str | None, Personal(subject="customer_id")]`.
    """

    subject: str


def personal_fields(cls: type) -> dict[str, str]:
    """The personal fields of event class `cls`, each with the field holding its subject id.

    Raises `RegistryError` for a declaration that cannot work: a personal field whose type
    does not admit `None`, or a subject field that is missing or itself personal.
    """
    if not dataclasses.is_dataclass(cls):
        raise RegistryError(f"{cls.__name__} must be a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    found: dict[str, str] = {}
    for name in names:
        hint = hints.get(name)
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        inner, *extras = typing.get_args(hint)
        marks = [m for m in extras if isinstance(m, Personal)]
        if not marks:
            continue
        if not _admits_none(inner):
            raise RegistryError(
                f"{cls.__name__}.{name} is personal, so its type must admit None "
                f"(it reads as None once the subject is forgotten): use {inner} | None"
            )
        found[name] = marks[0].subject
    for name, subject in found.items():
        if subject not in names:
            raise RegistryError(f"{cls.__name__}.{name}: subject field {subject!r} does not exist")
        if subject in found:
            raise RegistryError(
                f"{cls.__name__}.{name}: subject field {subject!r} is personal itself; subject ids "
                "must stay readable (use a pseudonymous id, not an e-mail address)"
            )
    return found


def _admits_none(tp: Any) -> bool:
    if tp is Any or tp is object or tp is type(None):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(tp)
    return False


def erased_fields(event: RecordedEvent) -> frozenset[str]:
    """The fields of `event` (read through `PersonalData`) whose subject was forgotten."""
    return frozenset(event.metadata.get(ERASED_KEY, ()))


def is_envelope(value: object) -> bool:
    """Whether a stored JSON value is an encrypted personal field."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(ENVELOPE_KEY), dict)


def _aead() -> tuple[type[AESGCM], type[Exception]]:
    """AES-GCM and the error it raises on a value that does not authenticate.

    Imported here, not at the top: `ilji.app` re-exports this module's names, and a plain
    `pip install ilji` (without the `personal` extra) must still import `ilji.app`.
    """
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise PersonalDataError(
            "encrypting personal data needs the personal extra: pip install 'ilji[personal]'"
        ) from None
    return AESGCM, InvalidTag


def _aad(event_type: str, field: str, subject: str) -> bytes:
    # JSON of a list: unambiguous, where joining with a separator would let "a|b" + "c" equal
    # "a" + "b|c" and so let an envelope move between fields.
    return json.dumps(["ilji-personal", ENVELOPE_VERSION, event_type, field, subject]).encode()


def seal(key: SubjectKey, event_type: str, field: str, value: Any) -> dict[str, Any]:
    """The envelope that stores JSON `value` of `field` in events of `event_type`, under `key`."""
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    ciphertext = _aead()[0](key.key).encrypt(nonce, plaintext, _aad(event_type, field, key.subject))
    return {
        ENVELOPE_KEY: {
            "v": ENVELOPE_VERSION,
            "subject": key.subject,
            "key_id": str(key.key_id),
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        }
    }


def envelope_subject(envelope: Mapping[str, Any]) -> str:
    """The subject an envelope (as `seal` returns it) was encrypted for."""
    subject = envelope[ENVELOPE_KEY].get("subject")
    if not isinstance(subject, str) or not subject:
        raise PersonalDataError("an encrypted field names no subject")
    return subject


def unseal(key: SubjectKey, event_type: str, field: str, envelope: Mapping[str, Any]) -> Any:
    """The JSON value in `envelope`; raises `PersonalDataError` unless `key` and the context match."""
    aesgcm, invalid_tag = _aead()
    body = envelope[ENVELOPE_KEY]
    try:
        if body.get("v") != ENVELOPE_VERSION:
            raise PersonalDataError(f"{event_type}.{field}: unknown envelope version {body.get('v')!r}")
        if uuid.UUID(body["key_id"]) != key.key_id or body["subject"] != key.subject:
            raise PersonalDataError(f"{event_type}.{field}: encrypted under another key")
        nonce = base64.b64decode(body["nonce"], validate=True)
        ciphertext = base64.b64decode(body["ciphertext"], validate=True)
        plaintext = aesgcm(key.key).decrypt(nonce, ciphertext, _aad(event_type, field, key.subject))
    except invalid_tag:
        # Wrong key, or an envelope moved to another field, type or subject, or altered bytes.
        raise PersonalDataError(f"{event_type}.{field}: the encrypted value does not authenticate") from None
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise PersonalDataError(f"{event_type}.{field}: malformed envelope ({type(exc).__name__})") from None
    return json.loads(plaintext)


class PersonalData:
    """Encrypts personal fields on the way in, decrypts (or shows erased) on the way out.

    `classes` are the registered event classes that carry personal fields (see `Personal`);
    events of other types pass through untouched. `legacy_fields` names, by stored event type,
    the personal fields of shapes no class describes any more (an event type or a field that
    an upcaster renames): they are opened on reading, never written.
    """

    def __init__(
        self,
        keys: KeyStore,
        registry: EventRegistry,
        classes: Iterable[type],
        *,
        legacy_fields: Mapping[str, Iterable[str]] | None = None,
        cache_size: int = 10_000,
        cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self._fields: dict[str, dict[str, str]] = {}
        for cls in classes:
            fields = personal_fields(cls)
            if not fields:
                raise RegistryError(f"{cls.__name__} has no field marked Personal")
            self._fields[registry.name_of(cls)] = fields
        self._readable: dict[str, frozenset[str]] = {
            name: frozenset(fields) for name, fields in self._fields.items()
        }
        for name, names in (legacy_fields or {}).items():
            if isinstance(names, str):
                raise RegistryError(f"legacy_fields[{name!r}] must be a collection of field names")
            self._readable[name] = self._readable.get(name, frozenset()) | frozenset(names)
        self._cache = KeyCache(cache_size, cache_ttl, clock)
        self._fence = ForgetFence()

    def fields_of(self, event_type: str) -> Mapping[str, str]:
        """The personal fields (field → subject field) of a stored event type; empty if none."""
        return self._fields.get(event_type, {})

    # -- writing -------------------------------------------------------------------------------

    async def encrypt(self, event: NewEvent) -> NewEvent:
        """`event` with each personal field sealed under its subject's key (same id, metadata)."""
        fields = self._fields.get(event.type)
        if not fields:
            return event
        data = dict(event.data)
        for field, subject_field in fields.items():
            value = data.get(field)
            # None has nothing to protect; an envelope is sealed already (an event copied from
            # another stream, or a retried batch): sealing it again would hide the real subject.
            if value is None or is_envelope(value):
                continue
            subject = _subject_of(event, subject_field)
            data[field] = seal(await self._key_for_writing(subject), event.type, field, value)
        return NewEvent(event.type, data, event.metadata, event.id)

    async def _key_for_writing(self, subject: str) -> SubjectKey:
        hit, key = self._cache.get(subject)
        if hit and key is not None:
            # A key forgotten by another process within the cache's age is still used here;
            # what it encrypts is then unreadable from birth, which is what forgetting asks for.
            # So is a write sealed here before a forget and appended after it.
            return key
        ticket = self._fence.lookup_started()
        try:
            key = await self.keys.key_for_writing(subject)
            if self._fence.overtaken(subject, ticket):
                # The key store answered before the forget shredded the key: refuse, as the
                # key store itself does from now on, and keep the key out of the cache.
                raise SubjectForgotten(subject)
        finally:
            self._fence.lookup_ended(ticket)
        self._cache.put(subject, key)
        return key

    # -- reading -------------------------------------------------------------------------------

    async def decrypt(self, event: RecordedEvent) -> RecordedEvent:
        """`event` with its personal fields opened, or `None` and listed in `"$erased"`."""
        [opened] = await self.decrypt_many([event])
        return opened

    async def decrypt_many(self, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """`decrypt` for a page of events, with one key lookup for all the subjects it misses."""
        # Only the fields declared personal for the stored type: anything else shaped like an
        # envelope is data a writer put there, and must not make reading fail.
        sealed = [
            {
                name: event.data[name]
                for name in self._readable.get(event.type, ())
                if is_envelope(event.data.get(name))
            }
            for event in events
        ]
        keys = await self._keys_for_reading({envelope_subject(v) for s in sealed for v in s.values()})
        opened: list[RecordedEvent] = []
        for event, envelopes in zip(events, sealed, strict=True):
            if not envelopes:
                opened.append(event)  # the common case costs nothing
                continue
            data, erased = dict(event.data), []
            for field, envelope in envelopes.items():
                key = keys.get(envelope_subject(envelope))
                if key is None:
                    data[field] = None
                    erased.append(field)
                else:
                    data[field] = unseal(key, event.type, field, envelope)
            metadata = dict(event.metadata)
            if erased:
                metadata[ERASED_KEY] = sorted(erased)
            opened.append(
                RecordedEvent(
                    event.id,
                    event.stream,
                    event.version,
                    event.position,
                    event.type,
                    data,
                    metadata,
                    event.recorded_at,
                )
            )
        return opened

    async def _keys_for_reading(self, subjects: set[str]) -> dict[str, SubjectKey | None]:
        found: dict[str, SubjectKey | None] = {}
        missing = []
        for subject in subjects:
            hit, key = self._cache.get(subject)
            if hit:
                found[subject] = key
            else:
                missing.append(subject)
        if missing:
            ticket = self._fence.lookup_started()
            try:
                fetched = await self.keys.keys_for_reading(missing)
                for subject in missing:
                    # A subject without a live key has been forgotten (envelopes exist only after
                    # a key did), so its absence is cached as well: replays stay one query a page.
                    # So is a key this process forgot while the lookup was in flight.
                    key = fetched.get(subject)
                    found[subject] = None if self._fence.overtaken(subject, ticket) else key
                    self._cache.put(subject, found[subject])
            finally:
                self._fence.lookup_ended(ticket)
        return found

    # -- forgetting ----------------------------------------------------------------------------

    async def forget_subject(
        self, subject: str, *, by: str | None = None, reason: str | None = None
    ) -> ForgottenSubject:
        """Shred the subject's key: their personal fields read as erased everywhere from now on.

        Returns the audit record (kept in the key store as a tombstone). From then on this
        process never opens the subject's fields, whatever key lookups were in flight; other
        processes stop within their key cache's age (`cache_ttl`). Read models and snapshots
        built before this call still hold plain copies: rebuild or delete them.
        """
        self._fence.forget_started(subject)
        try:
            record = await self.keys.forget(subject, by=by, reason=reason)
        finally:
            # Even when the key store failed (the key may be shredded or not), lookups that
            # overlapped the attempt are not trusted: the caller retries the forget.
            self._fence.forget_ended(subject)
            self._cache.evict(subject)
        log.info(
            "subject forgotten",
            extra={"subject": subject, "key_id": str(record.key_id), "key_deleted": record.key_deleted},
        )
        return record

    def store(self, inner: EventStore) -> PersonalDataStore:
        """`inner` wrapped so that everything appended and read goes through this object."""
        return PersonalDataStore(inner, self)


def _subject_of(event: NewEvent, subject_field: str) -> str:
    subject = event.data.get(subject_field)
    if isinstance(subject, bool) or not isinstance(subject, str | int) or subject == "":
        raise PersonalDataError(
            f"{event.type}: personal data needs a subject, but {subject_field!r} is {subject!r}"
        )
    return str(subject)


class PersonalDataStore:
    """An `EventStore` that encrypts personal fields on append and decrypts them on every read."""

    def __init__(self, inner: EventStore, personal: PersonalData) -> None:
        self.inner = inner
        self.personal = personal

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Seal the personal fields, then append to the wrapped store."""
        sealed = [await self.personal.encrypt(event) for event in events]
        return await self.inner.append(stream, sealed, expected_version)

    async def read_stream(
        self,
        stream: str,
        from_version: int | None = None,
        limit: int | None = None,
        direction: Direction = "forward",
    ) -> list[RecordedEvent]:
        """Read from the wrapped store (the whole stream unless `limit` is given); open the envelopes."""
        page = await self.inner.read_stream(stream, from_version, limit, direction)
        return await self.personal.decrypt_many(page)

    async def stream_version(self, stream: str) -> int:
        """The wrapped store's answer."""
        return await self.inner.stream_version(stream)

    async def read_all(
        self, after: int = 0, limit: int = 100, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """Read from the wrapped store and open the envelopes."""
        return await self.personal.decrypt_many(await self.inner.read_all(after, limit, types))

    async def read_category(
        self,
        category: str,
        after: int = 0,
        limit: int = 100,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """Read from the wrapped store and open the envelopes."""
        page = await self.inner.read_category(category, after, limit, types)
        return await self.personal.decrypt_many(page)

    async def follow(
        self,
        after: int = 0,
        *,
        category: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int = 500,
    ) -> AsyncIterator[RecordedEvent]:
        """Follow the wrapped store, opening envelopes event by event (keys come from the cache)."""
        async for event in self.inner.follow(after, category=category, types=types, batch_size=batch_size):
            yield await self.personal.decrypt(event)

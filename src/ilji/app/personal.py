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

Reading: `PersonalData.decrypt` opens envelopes whose key exists. Where the key was shredded,
the field becomes `None` and its name is listed in the event's metadata under `"$erased"`
(see `erased_fields`). The choice of `None` over a sentinel object is deliberate: typed
events decode it like any optional value, deciders and projections keep working, and mypy
makes every handler consider the erased case. Envelopes are self-describing, so reading needs
no list of personal fields, and upcasters run after decryption (they see plain values or `None`).

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
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ilji.app.errors import RegistryError
from ilji.app.registry import EventRegistry
from ilji.domain.errors import IljiError
from ilji.domain.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from ilji.store.port import Direction, EventStore
from ilji.store.subject_keys import ForgottenSubject, KeyStore, SubjectKey

log = logging.getLogger("ilji.app.personal")

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


def _aad(event_type: str, field: str, subject: str) -> bytes:
    # JSON of a list: unambiguous, where joining with a separator would let "a|b" + "c" equal
    # "a" + "b|c" and so let an envelope move between fields.
    return json.dumps(["ilji-personal", ENVELOPE_VERSION, event_type, field, subject]).encode()


def seal(key: SubjectKey, event_type: str, field: str, value: Any) -> dict[str, Any]:
    """The envelope that stores JSON `value` of `field` in events of `event_type`, under `key`."""
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    ciphertext = AESGCM(key.key).encrypt(nonce, plaintext, _aad(event_type, field, key.subject))
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
    body = envelope[ENVELOPE_KEY]
    try:
        if body.get("v") != ENVELOPE_VERSION:
            raise PersonalDataError(f"{event_type}.{field}: unknown envelope version {body.get('v')!r}")
        if uuid.UUID(body["key_id"]) != key.key_id or body["subject"] != key.subject:
            raise PersonalDataError(f"{event_type}.{field}: encrypted under another key")
        nonce = base64.b64decode(body["nonce"], validate=True)
        ciphertext = base64.b64decode(body["ciphertext"], validate=True)
        plaintext = AESGCM(key.key).decrypt(nonce, ciphertext, _aad(event_type, field, key.subject))
    except InvalidTag:
        # Wrong key, or an envelope moved to another field, type or subject, or altered bytes.
        raise PersonalDataError(f"{event_type}.{field}: the encrypted value does not authenticate") from None
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise PersonalDataError(f"{event_type}.{field}: malformed envelope ({type(exc).__name__})") from None
    return json.loads(plaintext)


class _KeyCache:
    """Recently used keys (and known absences) by subject: bounded in size and in age.

    The age bound is how long another process may keep reading a subject after it was
    forgotten elsewhere (the forgetting process itself evicts at once).
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._entries: OrderedDict[str, tuple[float, SubjectKey | None]] = OrderedDict()

    def get(self, subject: str) -> tuple[bool, SubjectKey | None]:
        entry = self._entries.get(subject)
        if entry is None or self.clock() - entry[0] > self.ttl:
            return False, None
        self._entries.move_to_end(subject)
        return True, entry[1]

    def put(self, subject: str, key: SubjectKey | None) -> None:
        self._entries[subject] = (self.clock(), key)
        self._entries.move_to_end(subject)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def evict(self, subject: str) -> None:
        self._entries.pop(subject, None)

    def __len__(self) -> int:
        return len(self._entries)


class PersonalData:
    """Encrypts personal fields on the way in, decrypts (or shows erased) on the way out.

    `classes` are the registered event classes that carry personal fields (see `Personal`);
    events of other types pass through untouched.
    """

    def __init__(
        self,
        keys: KeyStore,
        registry: EventRegistry,
        classes: Iterable[type],
        *,
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
        self._cache = _KeyCache(cache_size, cache_ttl, clock)

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
            return key
        key = await self.keys.key_for_writing(subject)
        self._cache.put(subject, key)
        return key

    # -- reading -------------------------------------------------------------------------------

    async def decrypt(self, event: RecordedEvent) -> RecordedEvent:
        """`event` with its personal fields opened, or `None` and listed in `"$erased"`."""
        [opened] = await self.decrypt_many([event])
        return opened

    async def decrypt_many(self, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """`decrypt` for a page of events, with one key lookup for all the subjects it misses."""
        sealed = [
            {name: value for name, value in event.data.items() if is_envelope(value)} for event in events
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
            fetched = await self.keys.keys_for_reading(missing)
            for subject in missing:
                # A subject without a live key has been forgotten (envelopes exist only after
                # a key did), so its absence is cached as well: replays stay one query a page.
                found[subject] = fetched.get(subject)
                self._cache.put(subject, found[subject])
        return found

    # -- forgetting ----------------------------------------------------------------------------

    async def forget_subject(
        self, subject: str, *, by: str | None = None, reason: str | None = None
    ) -> ForgottenSubject:
        """Shred the subject's key: their personal fields read as erased everywhere from now on.

        Returns the audit record (kept in the key store as a tombstone). Other processes stop
        reading the subject within their key cache's age (`cache_ttl`). Read models and
        snapshots built before this call still hold plain copies: rebuild or delete them.
        """
        record = await self.keys.forget(subject, by=by, reason=reason)
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

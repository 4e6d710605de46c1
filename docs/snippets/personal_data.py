"""Crypto-shredding: a subscriber's name and e-mail address are stored encrypted, then forgotten."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated

from ilji import (
    ForgottenSubject,
    PostgresEventStore,
    PostgresKeyStore,
    RecordedEvent,
    Settings,
    load_settings,
    open_runtime,
)
from ilji.app import (
    AggregateType,
    Decider,
    EventRegistry,
    MemoryCheckpointStore,
    Personal,
    PersonalData,
    ProjectionRunner,
    Repository,
    erased_fields,
    is_envelope,
)

# --8<-- [start:events]
events = EventRegistry()


@events.register
@dataclass(frozen=True)
class SubscriberRegistered:
    subscriber_id: str
    name: Annotated[str | None, Personal(subject="subscriber_id")]
    email: Annotated[str | None, Personal(subject="subscriber_id")]
    plan: str


# --8<-- [end:events]


@dataclass(frozen=True)
class RegisterSubscriber:
    subscriber_id: str
    name: str
    email: str
    plan: str


@dataclass(frozen=True)
class Subscriber:
    name: str | None = None  # None before registration, and once the subscriber is forgotten
    email: str | None = None
    plan: str | None = None


def decide(command: RegisterSubscriber, subscriber: Subscriber) -> list[SubscriberRegistered]:
    if subscriber.plan is not None:
        return []  # registered already: a repeated command changes nothing
    return [SubscriberRegistered(command.subscriber_id, command.name, command.email, command.plan)]


def evolve(subscriber: Subscriber, event: SubscriberRegistered) -> Subscriber:
    return Subscriber(event.name, event.email, event.plan)


subscriber_type = AggregateType("subscriber", Decider(decide, evolve, Subscriber), events)
Subscribers = Repository[RegisterSubscriber, SubscriberRegistered, Subscriber]


# --8<-- [start:wiring]
def wire(store: PostgresEventStore) -> tuple[PersonalData, Subscribers]:
    keys = PostgresKeyStore(store.database)  # the ilji.subject_keys table
    personal = PersonalData(keys, events, [SubscriberRegistered])
    subscribers = Repository(personal.store(store), subscriber_type)
    return personal, subscribers


# --8<-- [end:wiring]


# --8<-- [start:forget]
async def erase(personal: PersonalData, subscriber_id: str) -> ForgottenSubject:
    """An erasure request: shred the key; the tombstone is the audit record."""
    return await personal.forget_subject(
        subscriber_id,
        by="dpo@example.com",
        reason="request #12",
    )


# --8<-- [end:forget]


# --8<-- [start:erased]
class SubscriberNames:
    """A read model (`ilji.app`'s interface): id → name, or "[erased]"."""

    name = "subscriber_names"

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    async def handle(self, event: RecordedEvent) -> None:
        if event.type == "SubscriberRegistered":
            erased = "name" in erased_fields(event)
            name = "[erased]" if erased else event.data["name"]
            self.names[event.data["subscriber_id"]] = name


# --8<-- [end:erased]


async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        store = runtime.store
        personal, subscribers = wire(store)
        subscriber_id = f"s-{uuid.uuid4().hex[:8]}"
        await subscribers.handle(
            subscriber_id, RegisterSubscriber(subscriber_id, "Kim Jiwoo", "jiwoo@k.example", "pro")
        )

        # In the database the name is an envelope; through `personal` it reads as plain text.
        [stored] = await store.read_stream(subscribers.stream(subscriber_id))
        assert is_envelope(stored.data["name"]) and stored.data["plan"] == "pro"
        assert (await subscribers.load(subscriber_id)).state.name == "Kim Jiwoo"

        record = await erase(personal, subscriber_id)
        assert record.key_deleted

        subscriber = (await subscribers.load(subscriber_id)).state
        print(subscriber)  # Subscriber(name=None, email=None, plan='pro')
        assert subscriber == Subscriber(None, None, "pro")

        directory = SubscriberNames()  # rebuilt after the erasure, from the same events
        await ProjectionRunner(
            personal.store(store), directory, MemoryCheckpointStore(), category="subscriber"
        ).catch_up()
        assert directory.names[subscriber_id] == "[erased]"


if __name__ == "__main__":
    asyncio.run(main())

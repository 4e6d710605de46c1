"""Crypto-shredding: a customer's name and e-mail address are stored encrypted, then forgotten."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated

from ilji import PostgresEventStore, RecordedEvent
from ilji.app import (
    AggregateType,
    Decider,
    EventRegistry,
    MemoryCheckpointStore,
    ProjectionRunner,
    Repository,
)
from ilji.app.personal import Personal, PersonalData, erased_fields, is_envelope
from ilji.bootstrap import open_runtime
from ilji.settings import Settings, load_settings
from ilji.store.subject_keys import ForgottenSubject, PostgresKeyStore

# --8<-- [start:events]
events = EventRegistry()


@events.register
@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: str
    name: Annotated[str | None, Personal(subject="customer_id")]
    email: Annotated[str | None, Personal(subject="customer_id")]
    plan: str


# --8<-- [end:events]


@dataclass(frozen=True)
class RegisterCustomer:
    customer_id: str
    name: str
    email: str
    plan: str


@dataclass(frozen=True)
class Customer:
    name: str | None = None  # None before registration, and once the customer is forgotten
    email: str | None = None
    plan: str | None = None


def decide(command: RegisterCustomer, customer: Customer) -> list[CustomerRegistered]:
    if customer.plan is not None:
        return []  # registered already: a repeated command changes nothing
    return [CustomerRegistered(command.customer_id, command.name, command.email, command.plan)]


def evolve(customer: Customer, event: CustomerRegistered) -> Customer:
    return Customer(event.name, event.email, event.plan)


customer_type = AggregateType("customer", Decider(decide, evolve, Customer), events)
Customers = Repository[RegisterCustomer, CustomerRegistered, Customer]


# --8<-- [start:wiring]
def wire(store: PostgresEventStore) -> tuple[PersonalData, Customers]:
    keys = PostgresKeyStore(store.pool)  # the ilji.subject_keys table (migration 0004)
    personal = PersonalData(keys, events, [CustomerRegistered])
    customers = Repository(personal.store(store), customer_type)
    return personal, customers


# --8<-- [end:wiring]


# --8<-- [start:forget]
async def erase_customer(personal: PersonalData, customer_id: str) -> ForgottenSubject:
    """An erasure request: shred the customer's key; the tombstone is the audit record."""
    return await personal.forget_subject(customer_id, by="dpo@example.com", reason="request #12")


# --8<-- [end:forget]


# --8<-- [start:erased]
class CustomerNames:
    """A read model (`ilji.app`'s projection interface): customer id → name, or "[erased]"."""

    name = "customer_names"

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    async def handle(self, event: RecordedEvent) -> None:
        if event.type == "CustomerRegistered":
            erased = "name" in erased_fields(event)
            self.names[event.data["customer_id"]] = "[erased]" if erased else event.data["name"]


# --8<-- [end:erased]


async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        store = runtime.store
        personal, customers = wire(store)
        customer_id = f"c-{uuid.uuid4().hex[:8]}"
        await customers.handle(
            customer_id, RegisterCustomer(customer_id, "Kim Jiwoo", "jiwoo@k.example", "pro")
        )

        # In the database the name is an envelope; through `personal` it reads as plain text.
        [stored] = await store.read_stream(customers.stream(customer_id))
        assert is_envelope(stored.data["name"]) and stored.data["plan"] == "pro"
        assert (await customers.load(customer_id)).state.name == "Kim Jiwoo"

        record = await erase_customer(personal, customer_id)
        assert record.key_deleted

        customer = (await customers.load(customer_id)).state
        print(customer)  # Customer(name=None, email=None, plan='pro')
        assert customer == Customer(None, None, "pro")

        directory = CustomerNames()  # rebuilt after the erasure, from the same events
        await ProjectionRunner(
            personal.store(store), directory, MemoryCheckpointStore(), category="customer"
        ).catch_up()
        assert directory.names[customer_id] == "[erased]"


if __name__ == "__main__":
    asyncio.run(main())

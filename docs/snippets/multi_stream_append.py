"""A transfer between two accounts: one multi-stream append, both events or neither."""

import asyncio

from ilji import NO_STREAM, AppendPart, MemoryEventStore, NewEvent, WrongExpectedVersion


async def balance(store: MemoryEventStore, account: str) -> tuple[int, int]:
    """The account's balance and its stream version (for the expected version)."""
    history = await store.read_stream(account)
    return sum(e.data["amount"] for e in history), len(history)


async def transfer(store: MemoryEventStore, source: str, target: str, amount: int) -> None:
    while True:  # retry on a conflict: read again, decide again
        (funds, source_version), (_, target_version) = await asyncio.gather(
            balance(store, source), balance(store, target)
        )
        if funds < amount:
            raise ValueError(f"{source} has {funds}, cannot send {amount}")
        try:
            await store.append_streams(
                [
                    AppendPart(source, [NewEvent("Debited", {"amount": -amount})], source_version),
                    AppendPart(target, [NewEvent("Credited", {"amount": amount})], target_version),
                ]
            )
            return
        except WrongExpectedVersion as exc:
            print(f"part {exc.part} ({exc.stream}) moved on, retrying")


async def main() -> None:
    store = MemoryEventStore()
    await store.append_streams(
        [
            ("account-1", [NewEvent("Opened", {"amount": 100})], NO_STREAM),
            ("account-2", [NewEvent("Opened", {"amount": 0})], NO_STREAM),
        ]
    )
    await asyncio.gather(*(transfer(store, "account-1", "account-2", 10) for _ in range(5)))
    assert (await balance(store, "account-1"))[0] == 50
    assert (await balance(store, "account-2"))[0] == 50
    # The events of one call are consecutive in the global log, in part order.
    log = await store.read_all()
    assert [e.type for e in log[2:4]] == ["Debited", "Credited"]


if __name__ == "__main__":
    asyncio.run(main())

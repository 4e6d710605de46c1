"""The small program of the Clients page, with the library: PostgreSQL directly."""

import asyncio
import uuid

import ilji
from ilji import NO_STREAM, NewEvent, Settings, WrongExpectedVersion


# --8<-- [start:program]
async def program(settings: Settings, account: str) -> int:
    async with ilji.connect(settings) as store:
        await store.append(account, [NewEvent("AccountOpened", {"owner": "Mina"})], NO_STREAM)
        await store.append(account, [NewEvent("Deposited", {"amount": 50})], expected_version=1)
        try:  # decided on version 1, but the stream is at 2 now: refused
            await store.append(account, [NewEvent("Withdrawn", {"amount": 80})], expected_version=1)
        except WrongExpectedVersion as stale:
            print(stale.code, stale.actual)  # wrong-expected-version 2
        events = await store.read_stream(account)
        balance = sum(int(e.data["amount"]) for e in events if e.type == "Deposited")
        # Everything the account category has, in global order.
        category = await store.read_category("account", limit=1000)
        assert [e.id for e in category if e.stream == account] == [e.id for e in events]
        return balance


# --8<-- [end:program]


async def main(settings: Settings) -> None:
    assert await program(settings, f"account-{uuid.uuid4().hex[:8]}") == 50


if __name__ == "__main__":
    asyncio.run(main(Settings()))

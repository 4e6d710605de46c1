"""External systems during replay: a gateway that stays quiet, and recorded answers."""

import asyncio

from ilji import ANY, MemoryEventStore, NewEvent, RecordedEvent


class CustomsGateway:
    """Sends arrival notices to the customs office, unless the events are being replayed."""

    def __init__(self) -> None:
        self.replaying = False
        self.sent: list[str] = []

    def notify_arrival(self, ship: str, port: str) -> None:
        if not self.replaying:
            self.sent.append(f"{ship} arrived in {port}")


class RateGateway:
    """Asks an exchange-rate service, and answers from the recorded reply on replay."""

    def __init__(self, live_rates: dict[str, float]) -> None:
        self.live_rates = live_rates

    def rate(self, recorded: float | None, currency: str) -> float:
        return recorded if recorded is not None else self.live_rates[currency]


def handle(event: RecordedEvent, customs: CustomsGateway, ports: dict[str, str]) -> None:
    """Domain logic: the same code runs live and during replay; only the gateway knows which."""
    if event.type == "ShipArrived":
        ports[event.stream] = event.data["port"]
        customs.notify_arrival(event.stream, event.data["port"])


async def main() -> None:
    store, customs = MemoryEventStore(), CustomsGateway()
    ports: dict[str, str] = {}
    rates = RateGateway({"USD": 1390.0})
    # Record the answer of the outside world in the event itself when it is first handled.
    fee = NewEvent("PortFeeCharged", {"usd": 100, "krw_per_usd": rates.rate(None, "USD")})
    await store.append("ship-king-roy", [NewEvent("ShipArrived", {"port": "Busan"}), fee], ANY)
    for event in await store.read_stream("ship-king-roy"):
        handle(event, customs, ports)
    assert customs.sent == ["ship-king-roy arrived in Busan"]

    # Rebuild from scratch: the customs office must not hear about the arrival twice,
    # and the fee is recomputed with the rate of that day, not today's.
    rates.live_rates["USD"] = 1500.0
    customs.replaying, ports = True, {}
    for event in await store.read_stream("ship-king-roy"):
        handle(event, customs, ports)
        if event.type == "PortFeeCharged":
            krw = event.data["usd"] * rates.rate(event.data["krw_per_usd"], "USD")
            assert krw == 139_000.0
    assert ports == {"ship-king-roy": "Busan"} and len(customs.sent) == 1


if __name__ == "__main__":
    asyncio.run(main())

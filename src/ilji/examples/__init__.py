"""Ilji's example domains, one package each: the three examples of the event-sourcing articles.

- `ilji.examples.conference`: conference seat reservations (Microsoft's cloud design pattern);
- `ilji.examples.ships`: ships, ports and cargo (Martin Fowler's article), in the aggregate style;
- `ilji.examples.orders`: orders and customer credit coordinated by a process manager
  (microservices.io).

Each package has `domain` (pure deciders, and `views` for the console's time travel), its read
models or process manager, `demo.run_demo` (the `ilji demo` walkthrough) and `http.router`
(routes for `ilji serve --example`). They import Ilji through its front doors only (`ilji`,
`ilji.app`, `ilji.projections`, and `ilji.server` in the routes), as an application would.

This module is the one registry of their names: the settings, `ilji demo` and `ilji serve
--example` all ask it. It imports no example until one is asked for (their HTTP routes need the
`server` extra).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Literal

#: The example domains, in the order the guide presents them.
NAMES: tuple[str, ...] = ("conference", "ships", "orders")

#: The modules every example has: the pure domain, the `ilji demo` walkthrough, the HTTP routes.
Part = Literal["domain", "demo", "http"]


def unknown(names: Iterable[str]) -> list[str]:
    """The names in `names` that are not example domains, in their order."""
    return [name for name in names if name not in NAMES]


def choices() -> str:
    """The example names as a user reads them in an error message: "conference, ships, orders"."""
    return ", ".join(NAMES)


def load(name: str, part: Part) -> ModuleType:
    """One module of an example domain, imported now; `ValueError` names the choices."""
    if name not in NAMES:
        raise ValueError(f"unknown example {name!r}: choose {choices()}")
    return importlib.import_module(f"{__name__}.{name}.{part}")

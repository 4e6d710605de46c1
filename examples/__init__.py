"""Ilji's example domains, one package each: the three examples of the event-sourcing articles.

- `examples.conference`: conference seat reservations (Microsoft's cloud design pattern);
- `examples.ships`: ships, ports and cargo (Martin Fowler's article), in the aggregate style;
- `examples.orders`: orders and customer credit coordinated by a process manager
  (microservices.io).

Each package has `domain` (pure deciders), its read models or process manager, `demo.run_demo`
(the `ilji demo` walkthrough) and `http.router` (routes for `ilji serve --example`).
"""

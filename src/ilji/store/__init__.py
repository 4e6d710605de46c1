"""The event store: its port (the `EventStore` protocol), PostgreSQL and in-memory implementations."""

"""The vocabulary of event sourcing: events, expected versions and errors (standard library only)."""

"""Conference seat reservations (Microsoft's Event Sourcing pattern): reserve, cancel, availability."""

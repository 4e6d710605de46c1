"""Ship tracking (Martin Fowler's Event Sourcing article): ports, cargo, corrections and replays."""

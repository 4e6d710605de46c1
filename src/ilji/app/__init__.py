"""Command handling, repositories, snapshots and upcasting (built on the store)."""

"""Subscriptions, checkpoints and projections (built on the store)."""

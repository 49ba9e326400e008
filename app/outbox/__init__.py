"""Outbox resource: list queued outgoing messages, show their status, cancel them."""

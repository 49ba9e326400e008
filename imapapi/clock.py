"""Timestamps the way the API writes them: ISO 8601 in UTC, milliseconds, a trailing Z."""
from __future__ import annotations

from datetime import datetime, timezone


def iso(value: datetime | float) -> str:
    """A datetime (naive = UTC) or an epoch in seconds -> '2024-05-01T10:00:00.000Z'."""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(timezone.utc))

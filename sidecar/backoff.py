"""Reconnect delays: exponential 2 s -> 10 min with jitter; authentication failures start at 60 s."""
from __future__ import annotations

import random

BASE = 2.0
CAP = 600.0
AUTH_BASE = 60.0
JITTER = 0.2    # +-20 %: 10,000 accounts dropped together must not all retry in the same second


def delay(attempt: int, *, auth: bool = False, rand: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1 = first retry after a failure).

    `rand` in [0, 1) replaces random.random() (tests)."""
    attempt = max(1, int(attempt))
    base = AUTH_BASE if auth else BASE
    raw = min(CAP, base * (2 ** min(attempt - 1, 20)))
    r = random.random() if rand is None else rand
    return min(CAP, max(0.5, raw * (1 - JITTER + 2 * JITTER * r)))


class Backoff:
    """Per-account retry counter; reset after a successful connection."""

    def __init__(self):
        self.attempt = 0

    def next(self, *, auth: bool = False) -> float:
        self.attempt += 1
        return delay(self.attempt, auth=auth)

    def reset(self) -> None:
        self.attempt = 0

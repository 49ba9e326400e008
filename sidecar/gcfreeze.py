"""Keeps the sidecar's long-lived objects (accounts, connections) out of the cyclic GC's full collections."""
# A full (generation 2) collection walks every tracked object: at 2,000 idle accounts one took
# 170-520 ms, about every 40 s, all of it holding the GIL (a webhook or an API op waits it out).
# The accounts' objects live as long as their connections, so once the connect ramp has drained
# they are moved to the permanent generation (gc.freeze) and collections walk only what came
# after. A connection closed after that leaves its reference cycles (imaplib <-> the protocol
# tap, the selection wrappers) frozen, so every FULL_EVERY everything is thawed and collected
# once, then frozen again: that bounds what such garbage can hold to about an hour of churn.
from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

REFREEZE_EVERY = 600.0   # newer long-lived objects (reconnects, new accounts) join the frozen set
FULL_EVERY = 3600.0      # thaw, collect everything, freeze again
SETTLE = 20.0            # the ramp has been empty this long: the accounts' objects are in place


def due(now: float, frozen_at: float, full_at: float, settled_since: float | None,
        busy_since_freeze: bool) -> str | None:
    """Pure: "full", "freeze" or None. `settled_since`: since when no connection setup is queued
    or running (None: some are); `busy_since_freeze`: setups ran after the last freeze."""
    if settled_since is None or now - settled_since < SETTLE:
        return None
    if now - full_at >= FULL_EVERY:
        return "full"
    if busy_since_freeze or now - frozen_at >= REFREEZE_EVERY:
        return "freeze"
    return None


class Freezer:
    """Called from the supervisor's loop with the number of queued/running setups."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.frozen_at = self.full_at = clock()
        self.settled_since: float | None = None
        self.busy = False

    def tick(self, setups: int) -> str | None:
        now = self.clock()
        if setups:
            self.settled_since, self.busy = None, True
            return None
        if self.settled_since is None:
            self.settled_since = now
        what = due(now, self.frozen_at, self.full_at, self.settled_since, self.busy)
        if what is None:
            return None
        started = time.perf_counter()
        if what == "full":
            gc.unfreeze()
            self.full_at = now
        gc.collect()
        gc.freeze()
        self.frozen_at, self.busy = now, False
        log.info("gc: %s in %.0f ms, %d objects frozen", what,
                 (time.perf_counter() - started) * 1000, gc.get_freeze_count())
        return what

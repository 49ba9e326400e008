"""Bounded worker pool of daemon threads (a hung IMAP socket never blocks process exit)."""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque

log = logging.getLogger(__name__)


class Pool:
    def __init__(self, size: int, name: str = "sidecar"):
        self.size = size
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]
        for t in self._threads:
            t.start()

    def submit(self, fn, *args) -> None:
        self._q.put((fn, args))

    def backlog(self) -> int:
        return self._q.qsize()

    def _work(self):
        while True:
            fn, args = self._q.get()
            if fn is None:
                return
            try:
                fn(*args)
            except Exception:
                log.exception("pool job %s failed", getattr(fn, "__qualname__", fn))

    def shutdown(self):
        for _ in self._threads:
            self._q.put((None, ()))


class Ramp:
    """At most `limit` connection setups at once, FIFO: 1,000 accounts connect without a herd."""

    def __init__(self, pool: Pool, limit: int):
        self.pool = pool
        self.limit = limit
        self.active = 0
        self._q: deque = deque()
        self._lock = threading.Lock()

    def submit(self, fn) -> None:
        with self._lock:
            self._q.append(fn)
            self._pump()

    def pending(self) -> int:
        return len(self._q) + self.active

    def _pump(self):
        while self.active < self.limit and self._q:
            self.active += 1
            self.pool.submit(self._run, self._q.popleft())

    def _run(self, fn):
        try:
            fn()
        finally:
            with self._lock:
                self.active -= 1
                self._pump()

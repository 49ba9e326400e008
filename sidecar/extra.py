"""Extra command connections per account, opened lazily when the main one is busy (cap 2)."""
from __future__ import annotations

import threading
import time

from imapapi import errors

from .connection import ConnectFailure, close_quietly, connect

CAP = 2
IDLE_CLOSE = 60.0     # an unused extra connection is logged out after this many seconds


class ExtraPool:
    def __init__(self, account):
        self.account = account
        self.free: list[tuple[object, float]] = []
        self.busy = 0
        self.cond = threading.Condition()

    def acquire(self, timeout: float):
        """A logged-in client for one op (opens one when under the cap, else waits for one)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                if self.free:
                    client, _ = self.free.pop()
                    self.busy += 1
                    return client
                if self.busy < CAP:
                    self.busy += 1
                    break
                left = deadline - time.time()
                if left <= 0:
                    raise errors.GatewayTimeout("All connections of this account are busy")
                self.cond.wait(left)
        try:
            record = self.account.record
            client, _ = connect(record.get("imap"), self.account.runtime.settings.command_timeout,
                                account=self.account.id, redis=self.account.runtime.redis)
            return client
        except ConnectFailure as exc:
            self._done()
            raise errors.Unavailable(exc.error["response"]) from exc
        except BaseException:
            self._done()
            raise

    def _done(self):
        with self.cond:
            self.busy -= 1
            self.cond.notify()

    def release(self, client, broken: bool) -> None:
        if broken or self.account.stopped:
            close_quietly(client, logout=not broken)
            self._done()
            return
        with self.cond:
            self.busy -= 1
            self.free.append((client, time.time()))
            self.cond.notify()

    def reap(self, now: float | None = None) -> int:
        """Log out connections unused for IDLE_CLOSE seconds; -> how many were closed."""
        if not self.free:
            return 0   # most accounts never open one: no lock per account every round
        now = now or time.time()
        with self.cond:
            old = [c for c, used in self.free if now - used >= IDLE_CLOSE]
            self.free = [(c, used) for c, used in self.free if now - used < IDLE_CLOSE]
        for client in old:
            close_quietly(client)
        return len(old)

    def close_all(self) -> None:
        with self.cond:
            old, self.free = [c for c, _ in self.free], []
        for client in old:
            close_quietly(client)

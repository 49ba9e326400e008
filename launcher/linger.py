"""Gunicorn gthread worker whose pool thread waits briefly on a kept-alive connection for its next request."""
from __future__ import annotations

import errno
import os
import select
import ssl
import threading
import time
from collections import deque

from gunicorn.workers import gthread

# What a thread does after a kept-alive response (_linger's answer).
_NEXT, _BACK, _YIELDED = "next", "back", "yielded"
_READ = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class _Conn(gthread.TConn):
    """A TConn whose keepalive timer starts when its last response went out, not when the
    connection reaches the poller (a thread may have lingered on it meanwhile)."""

    idle_since: float | None = None

    def set_timeout(self):
        start, self.idle_since = self.idle_since, None
        self.timeout = (start if start is not None else time.monotonic()) + self.cfg.keepalive


class _Waiter:
    """A pool thread's wake-up pipe: the main thread writes one byte to ask for the thread back
    while it lingers (and a stopping worker one to every thread)."""

    __slots__ = ("r", "w", "asked")

    def __init__(self):
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.asked = False


class LingerThreadWorker(gthread.ThreadWorker):
    """gthread hands every request on a kept-alive connection from the main thread's poller to a
    pool thread and back: two thread wake-ups, a pipe write and two epoll_ctl per request. Here
    the thread that answered waits up to LINGER seconds (never past keepalive) in a blocking
    poll() on the socket for the next request and serves it itself.

    A thread lingers only while no connection waits for a thread. Its poll also watches its own
    wake-up pipe: when a connection is queued and no free thread will take it (counted under
    self._lock), the longest-lingering thread not asked yet gets one byte and gives its
    connection back to the poller at once. One pipe per thread, so a queued connection wakes one
    thread, not every lingering one. All pool threads start with the worker (see
    get_thread_pool). On a busy machine (BUSY_LOAD_PER_CPU) no thread lingers.
    """

    LINGER = 0.1
    # at or above this 1-minute load average per CPU no thread lingers (gthread's way): on a
    # 2-core machine lingering was faster at 1.2-3.8 and slower in half the runs at 5-8 (a
    # thread serving its connection's requests itself then waits longer for a core)
    BUSY_LOAD_PER_CPU = 4.0
    NOTIFY_EVERY = 1.0      # seconds between heartbeats to the arbiter (gthread: every turn)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.linger = min(self.LINGER, self.cfg.keepalive or 0)
        self._lock = threading.Lock()
        self._queued = 0                    # submitted to the pool, not yet started
        self._free = self.cfg.threads       # threads not inside handle()
        self._lingerers = deque()           # _Waiters of lingering threads not asked yet, oldest first
        self._asked = 0                     # lingering threads asked for their thread, not yet out
        self._waiters = []                  # every pool thread's _Waiter (stop wakes them all)
        self._local = threading.local()
        self._calm = True                   # the machine's load allows lingering
        self._calm_at = 0.0
        self._notified = float("-inf")
        self._notify_every = min(self.NOTIFY_EVERY, self.timeout / 4) if self.timeout else (
            self.NOTIFY_EVERY)
        self._cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)

    def get_thread_pool(self):
        pool = super().get_thread_pool()
        # start every thread now: ThreadPoolExecutor starts them one per submit, and not when it
        # believes one is idle (it counts idleness loosely), so a connection could stay queued
        # behind threads that linger while self._free says a free thread will take it
        barrier = threading.Barrier(self.cfg.threads)
        for _ in range(self.cfg.threads):
            pool.submit(barrier.wait, 10)
        return pool

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # without the lock (a signal handler on the main thread, which may hold it): a stopping
        # worker's lingering threads hand their connections back at once
        for waiter in list(self._waiters):
            try:
                os.write(waiter.w, b"s")
            except OSError:
                pass

    def accept(self, listener):
        """gthread's accept with _Conn for TConn."""
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(_Conn(self.cfg, client_sock, client_addr, listener.getsockname()))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def enqueue_req(self, conn):
        with self._lock:
            self._queued += 1
            if self._lingerers and self._queued > self._free:
                self._ask()
        super().enqueue_req(conn)

    def handle(self, conn):
        with self._lock:
            self._queued -= 1
            self._free -= 1                 # queued - free unchanged: nobody more to ask
        state = _BACK
        try:
            result = super().handle(conn)
            while result is True:
                state = self._linger(conn)
                if state != _NEXT:
                    break
                result = super().handle(conn)
            return result
        finally:
            if state != _YIELDED:           # a yielding thread counted itself free already
                with self._lock:
                    self._free += 1

    def notify(self):
        # gthread calls this on every turn of its loop, a few turns per request: each an
        # os.utime() of the heartbeat file (4 % of the API's samples per read, py-spy). The
        # arbiter only needs one within its timeout (60 s at least here): once a second (or a
        # quarter of a shorter timeout) will do.
        now = time.monotonic()
        if now - self._notified >= self._notify_every:
            self._notified = now
            super().notify()

    def murder_keepalived(self, force=False):
        super().murder_keepalived(force)
        # the main loop's once-a-turn hook: look at the load once a second
        now = time.monotonic()
        if now - self._calm_at >= 1.0:
            self._calm_at = now
            try:
                self._calm = os.getloadavg()[0] < self.BUSY_LOAD_PER_CPU * self._cpus
            except OSError:
                self._calm = True

    def _ask(self):
        """Ask lingering threads, oldest first, until one is asked per queued connection no
        free thread will take (under self._lock)."""
        while self._lingerers and self._asked < self._queued - self._free:
            waiter = self._lingerers.popleft()
            waiter.asked = True
            self._asked += 1
            try:
                os.write(waiter.w, b"t")
            except OSError:                 # full: it is readable anyway
                pass

    def _waiter(self) -> _Waiter:
        waiter = getattr(self._local, "waiter", None)
        if waiter is None:
            # the pipe lives as long as the process (handle_exit may still write to it)
            waiter = self._local.waiter = _Waiter()
            self._waiters.append(waiter)
        return waiter

    def _linger(self, conn):
        """After a kept-alive response: _NEXT (a request is there), _BACK (to the poller: quiet
        for self.linger, or stopping) or _YIELDED (a queued connection needs this thread)."""
        if conn.parser.unreader.buf.getvalue() or (
                isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
            return _NEXT                    # read ahead already: no poll would see it
        if not self.alive or not self.linger or not self._calm or self._queued > self._free:
            return _BACK                    # (read without the lock: a busy worker's fast way)
        waiter = self._waiter()
        with self._lock:
            if self._queued > self._free:
                return _BACK                # a connection waits for a thread: no lingering
            self._lingerers.append(waiter)
        idle_since = time.monotonic()
        deadline = idle_since + self.linger
        poller = select.poll()
        fd = conn.sock.fileno()
        poller.register(fd, _READ)
        poller.register(waiter.r, select.POLLIN)
        ready = ()
        while self.alive and (remaining := deadline - time.monotonic()) > 0:
            ready = [f for f, _ in poller.poll(remaining * 1000.0)]
            if ready:
                break
        with self._lock:
            if waiter.asked:
                waiter.asked = False
                self._asked -= 1
                self._free += 1             # this thread is about to leave handle()
                state = _YIELDED
            else:
                self._lingerers.remove(waiter)
                state = _NEXT if fd in ready and self.alive else _BACK
        if state == _YIELDED or waiter.r in ready:
            try:
                os.read(waiter.r, 16)       # the ask (it may have come after the poll returned)
            except OSError:
                pass
        if state != _NEXT:
            conn.idle_since = idle_since
        return state

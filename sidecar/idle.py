"""One selector thread for all idling sockets plus every per-account timer (no thread per account)."""
# Accounts arm themselves with `arm(account, sock, when)`: the loop calls `dispatch(account, reason,
# token)` once when the socket turns readable ("io") or `when` passes ("timer"), and forgets the
# registration. Every arm/disarm gives the account a new token (the reactor keeps the current one
# per account, `current(account, token)` checks it); events carrying an older token are stale and
# dropped, so a racing op that paused IDLE never sees a late wake-up act on its connection.
# Tokens come from one process-wide counter: no two accounts ever share one.
from __future__ import annotations

import heapq
import imaplib
import itertools
import logging
import os
import select
import selectors
import ssl
import threading
import time
from collections import deque

from .imap import compat, responses

log = logging.getLogger(__name__)


class Reactor:
    def __init__(self, dispatch):
        self._dispatch = dispatch
        self._sel = selectors.DefaultSelector()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._sel.register(self._rfd, selectors.EVENT_READ, None)
        self._ops: deque = deque()
        self._fds: dict[int, tuple] = {}      # fd -> (account, token)
        self._acct_fd: dict[int, int] = {}    # id(account) -> fd
        self._timers: list = []
        self._seq = itertools.count()
        self._tokens: dict[int, int] = {}    # id(account) -> its current token
        self._token_seq = itertools.count(1)
        self._compact_at = 4096
        self._lock = threading.Lock()         # token bumps happen from many pool threads
        self._stop = threading.Event()
        # when the loop's select() returns at the latest; 0 while it is not sleeping
        self._sleep_until = 0.0
        self._thread = threading.Thread(target=self._run, name="idle-selector", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake()
        self._thread.join(timeout=2)

    def current(self, account, token: int) -> bool:
        """Is `token` the account's latest (an event carrying it is not stale)?"""
        return self._tokens.get(id(account)) == token

    def arm(self, account, sock, when: float) -> int:
        """Watch `sock` (None: timer only) until readable or `when`; returns the new token."""
        with self._lock:
            token = self._tokens[id(account)] = next(self._token_seq)
        self._ops.append(("arm", account, token, sock.fileno() if sock is not None else None, when))
        # A timer due no sooner than the loop wakes anyway is applied at that turn: no wake-up
        # (an op's re-arm for RESUME_GRACE while another account's timer is sooner).
        if sock is not None or when < self._sleep_until:
            self._wake()
        return token

    def disarm(self, account, *, final: bool = False) -> None:
        """Drop the account's registration; `final` (the account stops for good) also forgets
        its token, so every event still on its way is stale."""
        with self._lock:
            if final:
                self._tokens.pop(id(account), None)
            else:
                self._tokens[id(account)] = next(self._token_seq)
        self._ops.append(("disarm", account, None, None, None))
        # Only a watched socket needs the loop now. A timer-only registration (an account
        # paused between ops: every API op borrows it so) is stale with the new token and the
        # queued disarm is applied at the loop's next turn: no selector-thread wake-up, and
        # no GIL hand-off to it, on each op's path.
        if final or id(account) in self._acct_fd:
            self._wake()

    def watched(self) -> int:
        return len(self._fds)

    def _wake(self):
        try:
            os.write(self._wfd, b"x")
        except BlockingIOError:
            pass   # pipe full: the loop is already going to wake up

    def _forget(self, account):
        fd = self._acct_fd.pop(id(account), None)
        if fd is not None and self._fds.get(fd, (None,))[0] is account:
            del self._fds[fd]
            try:
                self._sel.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass

    def _apply(self):
        while self._ops:
            kind, account, token, fd, when = self._ops.popleft()
            self._forget(account)
            if kind != "arm" or token != self._tokens.get(id(account)):
                continue
            if fd is not None:
                stale = self._fds.pop(fd, None)
                if stale is not None:
                    # fd number reused after a close we never saw. The kernel dropped the closed
                    # socket from epoll by itself and modify() with the same events makes no
                    # syscall: the new socket would never be watched (a silent account).
                    self._acct_fd.pop(id(stale[0]), None)
                    try:
                        self._sel.unregister(fd)
                    except (KeyError, ValueError, OSError):
                        pass
                try:
                    self._sel.register(fd, selectors.EVENT_READ, None)
                except (ValueError, OSError):
                    self._fire(account, token, "io")   # closed already: let the pool see it
                    continue
                self._fds[fd] = (account, token)
                self._acct_fd[id(account)] = fd
            heapq.heappush(self._timers, (when, next(self._seq), account, token))
        if len(self._timers) > self._compact_at:
            # Re-arming leaves superseded timers behind; drop them before they pile up.
            tokens = self._tokens
            self._timers = [t for t in self._timers if t[3] == tokens.get(id(t[2]))]
            heapq.heapify(self._timers)
            self._compact_at = max(4096, 3 * len(self._timers))

    def _fire(self, account, token, reason):
        try:
            self._dispatch(account, reason, token)
        except Exception:
            log.exception("dispatch failed for %s", getattr(account, "id", account))

    def _run(self):
        while not self._stop.is_set():
            self._sleep_until = 0.0   # before _apply: an arm() from now on wakes us
            self._apply()
            now = time.time()
            while self._timers and self._timers[0][0] <= now:
                _, _, account, token = heapq.heappop(self._timers)
                if token == self._tokens.get(id(account)):
                    self._forget(account)
                    self._fire(account, token, "timer")
            timeout = 30.0
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - now))
            self._sleep_until = now + timeout
            if self._ops:   # queued before _sleep_until was set: its arm() may not have woken us
                timeout = 0.0
            try:
                events = self._sel.select(timeout)
            except OSError:
                log.exception("selector failed")
                time.sleep(0.1)
                continue
            for key, _ in events:
                if key.fd == self._rfd:
                    try:
                        while os.read(self._rfd, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                entry = self._fds.pop(key.fd, None)
                try:
                    self._sel.unregister(key.fd)
                except (KeyError, ValueError, OSError):
                    pass
                if entry is None:
                    continue
                account, token = entry
                self._acct_fd.pop(id(account), None)
                if token == self._tokens.get(id(account)):
                    self._fire(account, token, "io")


def has_buffered(client) -> bool:
    """Bytes already read off the socket (TLS record buffer or imaplib's BufferedReader)?

    select() cannot see these, so an account with buffered bytes must be serviced at once."""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    reader = compat.buffered_reader(client)
    if reader is None or not hasattr(reader, "peek"):
        return False
    sock.setblocking(False)
    try:
        return bool(reader.peek(1))
    except (ssl.SSLWantReadError, BlockingIOError, ValueError, OSError):
        return False
    finally:
        compat.restore_read_timeout(client)


def _readable_now(sock) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def read_available(client) -> list:
    """Parsed untagged responses that can be read now (IDLE running); raises abort on EOF.

    Whole responses are read with the normal (blocking, timed) socket so a line or literal split
    across TCP segments is never mistaken for garbage; a `{n}` literal (Dovecot sends non-ASCII
    mailbox names that way) is read as exactly n bytes through imaplib's own buffer."""
    get_line, read, out = *compat.line_reader(client), []
    for _ in range(10000):   # bounded: a flood of updates is finished by idle_done()
        if not (has_buffered(client) or _readable_now(client.socket())):
            break
        out.append(responses.parse_untagged(responses.read_response(get_line, read)))
    return out


def start_idle(client) -> list:
    """imapclient's idle(), tolerant: untagged responses the server sends before its "+ idling"
    (a NOTIFY push racing the command) are returned, not fatal (imapclient raises on them)."""
    tag = compat.begin(client, "IDLE")
    get_line, read = compat.line_reader(client)
    out = []
    for _ in range(100000):
        parts = responses.read_response(get_line, read)
        line = responses.first_line(parts)
        if line.startswith(b"+"):
            compat.set_idle_tag(client, tag)
            return out
        if line.startswith(tag + b" "):
            compat.forget_tag(client, tag)
            raise imaplib.IMAP4.error(f"IDLE refused: {line!r}")
        if line.startswith(b"* "):
            out.append(responses.parse_untagged(parts))
    raise imaplib.IMAP4.abort("no answer to IDLE")


def idle_done(client) -> tuple:
    """imapclient's idle_done(), literal-aware: its version parses only the first line of each
    response, so a pushed literal arriving before the DONE answer would break the connection."""
    tag = compat.idle_tag(client)
    get_line, read = compat.line_reader(client)
    compat.send_raw(client, b"DONE\r\n")
    out = []
    for _ in range(100000):
        parts = responses.read_response(get_line, read)
        line = responses.first_line(parts)
        if line.startswith(tag + b" "):
            compat.forget_tag(client, tag)
            typ, _, text = line[len(tag) + 1:].partition(b" ")
            if typ.upper() != b"OK":
                raise imaplib.IMAP4.error(f"IDLE failed: {line!r}")
            return text, out
        if line.startswith(b"* "):
            out.append(responses.parse_untagged(parts))
    raise imaplib.IMAP4.abort("no answer to DONE")


def is_keepalive(responses) -> bool:
    """Only '* OK Still here' style status lines: no reason to leave IDLE."""
    return all(isinstance(r, tuple) and r and r[0] == b"OK" for r in responses)

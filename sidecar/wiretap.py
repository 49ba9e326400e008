"""Taps every IMAP connection's byte stream: protocol log lines (when on) and protocol metrics.

`attach(client, account, redis)` wraps the connection's send/readline/read (through
sidecar.imap.compat). Every connection is tapped, so logging turns on or off for live
connections without a reconnect: the `logs` setting is re-read when the API announces a change
(keys.SETTINGS_CHANNEL) and every RELOAD_EVERY seconds. With logging off a line costs a
dict lookup plus the metric updates; with it on, entries are buffered per connection and handed
to a writer thread when a command completes (one Redis round trip per batch, off the command's
path: bench/protolog_cost.py).
"""
from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time

from imapapi import keys, protolog

from . import metrics
from .imap import compat

log = logging.getLogger(__name__)

RELOAD_EVERY = 30.0
FLUSH_LINES = 200           # write a batch at least this often, even inside one long reply
_TAGGED = re.compile(rb"^([A-Za-z0-9.]+) (OK|NO|BAD)\b", re.I)
_COMMAND = re.compile(rb"^([A-Za-z0-9.]+) (UID )?([A-Za-z]+)", re.I)
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n?$")
_UNTAGGED = re.compile(rb"^\* (?:\d+ )?([A-Za-z]+)")
# label children bound once: .labels() per line would take a lock and a dict lookup each time
BYTES_IN, BYTES_OUT = metrics.BYTES.labels("in"), metrics.BYTES.labels("out")


class LogSettings:
    """The current `logs` setting in this process, refreshed from Redis by a daemon thread."""

    def __init__(self):
        self.value = dict(protolog.DEFAULTS)
        self._thread = None
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def enabled(self, account: str) -> bool:
        return protolog.enabled(self.value, account)

    def start(self, redis) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._reload(redis)
            self._thread = threading.Thread(target=self._run, args=(redis,), daemon=True,
                                            name="protolog-settings")
            self._thread.start()

    def _reload(self, redis) -> None:
        try:
            value = protolog.get(redis)
        except Exception as exc:   # Redis down: keep the last known setting
            log.debug("logs setting not reloaded: %s", exc)
            return
        changed, self.value = value != self.value, value
        if changed:
            # after any batch still queued: a late write must not bring a deleted log back
            WRITER.put(redis, None, None)

    def _run(self, redis) -> None:
        while True:
            pubsub = None
            try:
                pubsub = redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.SETTINGS_CHANNEL)
                deadline = time.monotonic() + RELOAD_EVERY
                while True:
                    msg = pubsub.get_message(timeout=1.0)
                    if msg or time.monotonic() >= deadline:
                        self._reload(redis)
                        deadline = time.monotonic() + RELOAD_EVERY
            except Exception as exc:
                log.debug("settings channel failed (%s); resubscribing", exc)
                time.sleep(1.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass


SETTINGS = LogSettings()


class Writer:
    """One daemon thread writes the log batches, so an IMAP command never waits on Redis for
    its log (FIFO: each account's lines stay in order). When Redis falls behind by more than
    MAX_PENDING batches, new batches are dropped (and counted) rather than piling up memory."""

    MAX_PENDING = 10000

    def __init__(self):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()

    def put(self, redis, account: str | None, entries: list[dict] | None) -> None:
        """Queue a batch (account None: a prune after a settings change)."""
        if entries is not None and self.queue.qsize() >= self.MAX_PENDING:
            metrics.LOG_DROPPED.inc(len(entries))
            return
        self.queue.put((redis, account, entries))
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="protolog-writer")
                    self._thread.start()

    def _run(self) -> None:
        while True:
            redis, account, entries = self.queue.get()
            setting = SETTINGS.value
            if account is None:   # the setting changed: drop the logs of accounts now off
                try:
                    protolog.prune(redis, setting)
                except Exception as exc:
                    log.debug("protocol logs not pruned: %s", exc)
                continue
            if not protolog.enabled(setting, account):
                continue   # turned off meanwhile: its log was deleted, do not start a new one
            try:
                protolog.append(redis, account, entries, setting["maxLogLines"])
            except Exception as exc:   # a log is best effort: never fail the IMAP command
                metrics.LOG_DROPPED.inc(len(entries))
                log.debug("%s: protocol log not written: %s", account, exc)


WRITER = Writer()


class Tap:
    """One connection's wrapper (installed over imaplib's send/readline/read)."""

    def __init__(self, client, account: str, redis, label: str = ""):
        self.account = account
        self.redis = redis
        self.cid = os.urandom(5).hex()
        self.redactor = protolog.Redactor()
        self.buffer: list[dict] = []
        self.pending: dict[bytes, tuple[str, float]] = {}   # tag -> (command, started)
        self.client_literal = False
        self.after_literal = False
        self.idle_tag: bytes | None = None      # pushes are untagged lines while IDLE runs
        self.bytes_in = self.bytes_out = 0      # added to the counters once per reply
        self._send, self._readline, self._read = compat.wrap_io(
            client, self.send, self.readline, self.read)
        if label:
            self._log("i", label)

    # -- logging -----------------------------------------------------------------------------
    def _log(self, src: str, msg: str) -> None:
        self.buffer.append(protolog.entry(src, self.cid, msg))
        if len(self.buffer) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        entries, self.buffer = self.buffer, []
        if entries and SETTINGS.enabled(self.account):
            WRITER.put(self.redis, self.account, entries)

    def _count_bytes(self) -> None:
        if self.bytes_in:
            BYTES_IN.inc(self.bytes_in)
        if self.bytes_out:
            BYTES_OUT.inc(self.bytes_out)
        self.bytes_in = self.bytes_out = 0

    # -- the wrapped calls -------------------------------------------------------------------
    def send(self, data: bytes):
        result = self._send(data)
        self.bytes_out += len(data)
        logging_on = SETTINGS.enabled(self.account)
        if self.client_literal:
            self.client_literal, self.after_literal = False, True
            if logging_on:
                self._log("c", self.redactor.literal(bytes(data), "c"))
            return result
        if self.after_literal and data == b"\r\n":
            self.after_literal = False
            return result
        self.after_literal = False
        match = _COMMAND.match(data)
        if match and match.group(1) not in self.pending:
            name = (match.group(3).upper()).decode("ascii", "replace")
            if match.group(2):
                name = "UID " + name
            self.pending[match.group(1)] = (name, time.monotonic())
            if name == "IDLE":
                self.idle_tag = match.group(1)
        if _LITERAL.search(data):
            self.client_literal = True
        if logging_on:
            self._log("c", self.redactor.client(bytes(data)))
        elif match and match.group(3).upper() in (b"LOGIN", b"AUTHENTICATE"):
            self.redactor.client(bytes(data))   # keep the SASL state right if logging turns on
        return result

    def readline(self):
        line = self._readline()
        self.bytes_in += len(line)
        done = False
        if line.startswith(b"* "):
            if self.idle_tag is not None or not self.pending:
                kind = _UNTAGGED.match(line)
                metrics.PUSHES.labels(kind.group(1).upper().decode("ascii", "replace")
                                      if kind else "OTHER").inc()
                self._count_bytes()
        elif not line.startswith(b"+"):
            match = _TAGGED.match(line)
            if match:
                tag = match.group(1)
                started = self.pending.pop(tag, None)
                if started:
                    metrics.COMMAND_SECONDS.labels(started[0]).observe(
                        time.monotonic() - started[1])
                if tag == self.idle_tag:
                    self.idle_tag = None
                self._count_bytes()
                done = True
        if SETTINGS.enabled(self.account):
            self._log("s", self.redactor.server(line))
            if done or line.startswith(b"+"):
                self.flush()
        else:
            if self.redactor.in_secret:
                self.redactor.server(line)   # only to see the SASL exchange end
            if self.buffer:
                self.buffer = []
        return line

    def read(self, size: int):
        data = self._read(size)
        self.bytes_in += len(data)
        if SETTINGS.enabled(self.account):
            self._log("s", self.redactor.literal(bytes(data), "s"))
        return data

    def literal_streamed(self, head: bytes, size: int) -> None:
        """A literal read past read() (sidecar/imap/literal.py): counted, its start logged."""
        self.bytes_in += size
        if SETTINGS.enabled(self.account):
            text = self.redactor.literal(head, "s")
            if size > len(head) and "cut]" not in text:
                text += f"... [literal {size} bytes, cut]"
            self._log("s", text.replace(f"[literal {len(head)} bytes", f"[literal {size} bytes"))


def attach(client, account: str | None, redis, label: str = "") -> Tap | None:
    """Tap a freshly opened connection (before LOGIN, so the login is logged redacted)."""
    if not account or redis is None:
        return None
    try:
        SETTINGS.start(redis)
        return Tap(client, account, redis, label)
    except Exception as exc:   # an imaplib without the names we wrap: run untapped
        log.warning("protocol tap not installed: %s", exc)
        return None

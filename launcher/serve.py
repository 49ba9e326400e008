"""`imap-api serve`: run api, worker, sidecar (and flower) as supervised child processes."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from imapapi.settings import Settings, redacted

from .embedded import EmbeddedRedis

log = logging.getLogger("imapapi.serve")

STOP_BUDGET = 7.5        # seconds from SIGTERM to SIGKILL for the children (whole stop < 10 s)
RESTART_BACKOFF = (1, 2, 5, 10, 30)
MAX_QUICK_FAILURES = 5   # crashes in a row, each within a minute of starting, before serve gives up


def _die_with_parent():
    """Children get SIGTERM if the supervisor dies hard (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except Exception:   # not Linux: best effort only
        pass


class Child:
    """One supervised process, restarted with backoff when it exits on its own."""

    def __init__(self, name: str, argv: list[str], env: dict):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.failures = 0
        self.restart_at = 0.0
        self.started_at = 0.0

    def start(self):
        # own session: a terminal Ctrl-C reaches only the supervisor, which then stops us in order
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def poll(self, now: float):
        if self.proc is None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            if now - self.started_at > 60:
                self.failures = 0   # ran long enough: forget earlier crashes
            return
        delay = RESTART_BACKOFF[min(self.failures, len(RESTART_BACKOFF) - 1)]
        self.failures += 1
        if self.failures > MAX_QUICK_FAILURES:
            raise _GiveUp(f"{self.name} keeps exiting (last code {code}); giving up")
        log.error("%s exited with code %s; restarting in %ss", self.name, code, delay)
        self.proc = None
        self.restart_at = now + delay

    def terminate(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            log.warning("%s did not stop in time; killing it", self.name)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()


class _Stop(Exception):
    pass


class _GiveUp(Exception):
    pass


def serve(settings: Settings, option_args: list[str], *, flower: bool = False,
          flower_port: int = 5555) -> int:
    problem = _port_problem(settings.api_host, settings.api_port)
    if problem:
        log.error("cannot listen on %s:%d: %s", settings.api_host, settings.api_port, problem)
        return 1
    embedded = None
    env = dict(os.environ)
    if settings.redis_url:
        url = settings.redis_url
        log.info("using Redis at %s", redacted(url))
    else:
        embedded = EmbeddedRedis(settings.state_dir)
        try:
            url = embedded.start()
        except Exception as exc:
            log.error("could not start the embedded Redis server: %s", exc)
            return 1
        log.info("no Redis URL configured: using the embedded Redis-compatible server %s at %s "
                 "(data in %s)", embedded.describe(), url, embedded.data_dir)
        # `imap-api tokens ...` finds the embedded server here (launcher/admin.py)
        url_file = os.path.join(settings.state_dir, "redis.url")
        with open(url_file, "w", encoding="utf-8") as fh:
            fh.write(url + "\n")
    env["REDIS_URL"] = url
    # one multiproc dir per run, cleaned by `api` at start
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(
        os.path.abspath(settings.state_dir), f"prometheus-{settings.api_port}"))
    base = [sys.executable, "-m", "launcher.cli"]
    if flower:   # the web UI's overview links it
        env.setdefault("FLOWER_URL", f"http://{settings.api_host}:{flower_port}/")
    children = [Child(name, base + [name] + option_args, env) for name in ("worker", "sidecar", "api")]
    if flower:
        children.append(Child("flower", base + ["flower", f"--flower.port={flower_port}"]
                              + option_args, env))

    def on_signal(signum, frame):
        raise _Stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    reason, status = "exit", 0
    try:
        for child in children:
            child.start()
        log.info("imap-api listening on http://%s:%d/ (docs at /docs)", settings.api_host,
                 settings.api_port)
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            for child in children:
                child.poll(now)
    except _Stop as stop:
        reason = signal.Signals(stop.args[0]).name
    except _GiveUp as exc:
        log.error("%s", exc)
        reason, status = "a child keeps failing", 1
    finally:
        # a second Ctrl-C during shutdown must not abort the cleanup
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        log.info("stopping (%s)", reason)
        _stop_all(children)
        if embedded is not None:
            embedded.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
    return status


def _port_problem(host: str, port: int) -> str | None:
    """Fail fast (one log line) instead of letting Gunicorn crash-loop on a busy port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _stop_all(children: list[Child]):
    # API first so no new requests arrive, but all get SIGTERM at once to stay inside the budget
    for child in reversed(children):
        child.terminate()
    deadline = time.monotonic() + STOP_BUDGET
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    for child in children:
        if child.proc is not None:
            try:
                child.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass

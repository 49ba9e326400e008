"""`imap-api-probe api|worker|sidecar|flower`: container health checks (exit 0 healthy, 1 not)."""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# The worker touches this file from its consumer loop (the liveness bootstep of the worker package); a stale file
# means the loop stopped turning. Under $TMPDIR, which is a writable volume in the images.
WORKER_BEAT_EVERY = 10.0
WORKER_BEAT_STALE = 60.0
# The sidecar heartbeats every 2 s into ia:sidecars; the API counts it gone after 10 s.
SIDECAR_READY_STALE = 10.0
SIDECAR_LIVE_STALE = 60.0
ROLES = ("api", "worker", "sidecar", "flower")
USAGE = """imap-api-probe [api|worker|sidecar|flower] [--live]

  api      GET /health/ready on the API port (Redis reachable)
  worker   the worker's heartbeat file is fresh (its consumer loop runs)
  sidecar  this sidecar's heartbeat in Redis is fresh; with --live a Redis that does not
           answer passes (restarting the sidecar would not help), a stale heartbeat fails
  flower   Flower answers on its port
  sidecar --handover
           (preStop) SIGTERM the sidecar (PID 1, or $IMAPAPI_SIDECAR_PID) and wait until it
           left the heartbeat set, i.e. released its accounts to the other replicas (at most
           sidecar.drainBudget + 5 s)
without a role: the role of the container's main process (/proc/1/cmdline)"""


def worker_beat_file() -> Path:
    """Where the worker's heartbeat lives (IMAPAPI_WORKER_HEARTBEAT overrides)."""
    # $TMPDIR, not tempfile.gettempdir(): that one probes by writing, and gives up (raises) on a
    # read-only root filesystem whose /tmp volume is not mounted yet
    return Path(os.environ.get("IMAPAPI_WORKER_HEARTBEAT")
                or Path(os.environ.get("TMPDIR") or "/tmp") / "imap-api-worker.heartbeat")


def check_worker(stale: float = WORKER_BEAT_STALE) -> tuple[bool, str]:
    path = worker_beat_file()
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"no worker heartbeat at {path}"
    if age > stale:
        return False, f"worker heartbeat {age:.0f}s old (limit {stale:.0f}s)"
    return True, f"worker heartbeat {age:.1f}s old"


def check_http(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200, f"{url}: {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def _local(host: str) -> str:
    """The address to probe a server bound to `host` on (a wildcard bind answers on loopback)."""
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def check_api() -> tuple[bool, str]:
    from .settings import load_settings

    settings = load_settings([])
    port = os.environ.get("PORT") if not os.environ.get("API_PORT") else None
    return check_http(f"http://{_local(settings.api_host)}:{port or settings.api_port}/health/ready")


def check_flower() -> tuple[bool, str]:
    from .settings import load_settings

    # Flower binds the API host (imap-api flower); its port is --flower.port, given here as
    # FLOWER_PORT (the chart sets both from one value).
    port = os.environ.get("FLOWER_PORT", "5555")
    host = _local(load_settings([]).api_host)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3):
            return True, f"flower listening on {host}:{port}"
    except OSError as exc:
        return False, f"flower {host}:{port}: {exc}"


def check_sidecar(live: bool = False) -> tuple[bool, str]:
    import redis

    from . import keys
    from .settings import ConfigError, load_settings

    try:
        settings = load_settings([])
        url = settings.redis_url_or_default
    except ConfigError as exc:
        return False, str(exc)
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        beats = {m.decode(): s for m, s in client.zrange(keys.SIDECARS, 0, -1, withscores=True)}
    except redis.RedisError as exc:
        if live:
            return True, f"Redis not reachable ({exc.__class__.__name__}); not the sidecar's fault"
        return False, f"Redis not reachable: {exc.__class__.__name__}"
    finally:
        client.close()
    sid = settings.sidecar_id
    if sid:
        beat = beats.get(sid)
    else:
        # An id made up at start is `<hostname>-<pid>-<random>`; the hostname is the container's.
        prefix = f"{socket.gethostname()}-"
        beat = max((s for m, s in beats.items() if m.startswith(prefix)), default=None)
        sid = prefix + "*"
    if beat is None:
        return False, f"no heartbeat for sidecar {sid}"
    age = time.time() - beat
    limit = SIDECAR_LIVE_STALE if live else SIDECAR_READY_STALE
    if age > limit:
        return False, f"sidecar {sid} heartbeat {age:.0f}s old (limit {limit:.0f}s)"
    return True, f"sidecar {sid} heartbeat {age:.1f}s old"


# The sidecar leaves ia:sidecars when its drain ends (sidecar.drainBudget at most), after the
# command server's 2 s join; beyond that the preStop wait would only eat the final LOGOUTs' time.
HANDOVER_AFTER_DRAIN = 5.0


def handover_timeout(settings) -> float:
    """How long preStop waits for the sidecar to leave ia:sidecars: its drain, then a little."""
    return settings.sidecar_drain_budget + HANDOVER_AFTER_DRAIN


def handover(timeout: float | None = None) -> tuple[bool, str]:
    """The sidecar stops on SIGTERM: LOGOUT, release every account lease, leave ia:sidecars.
    Waiting for that here keeps the pod in Terminating until the other replicas can take over
    (kubelet's own SIGTERM after this hook would cut the drain short: a second signal)."""
    import redis

    from . import keys
    from .settings import load_settings

    settings = load_settings([])
    if timeout is None:
        timeout = handover_timeout(settings)
    sid = settings.sidecar_id
    if not sid:
        return False, "SIDECAR_ID is not set: cannot tell when this sidecar has left"
    pid = int(os.environ.get("IMAPAPI_SIDECAR_PID", "1"))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True, f"sidecar process {pid} already gone"
    client = redis.Redis.from_url(settings.redis_url_or_default, socket_timeout=3,
                                  socket_connect_timeout=3)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if client.zscore(keys.SIDECARS, sid) is None:
                    return True, f"sidecar {sid} handed its accounts over"
            except redis.RedisError:
                pass   # Redis down: nothing to hand over through; keep waiting for the process
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True, f"sidecar {sid} exited"
            time.sleep(0.2)
    finally:
        client.close()
    return False, f"sidecar {sid} still in the heartbeat set after {timeout:.0f}s"


def main_role() -> str | None:
    """The role of PID 1 (`imap-api worker ...`), for a HEALTHCHECK that is the same per image."""
    try:
        args = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for arg in args:
        if arg.decode(errors="replace") in ROLES:
            return arg.decode()
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(USAGE)
        return 0
    live = "--live" in args
    roles = [a for a in args if not a.startswith("-")]
    role = roles[0] if roles else main_role()
    if role not in ROLES:
        print(f"imap-api-probe: unknown role {role!r}\n{USAGE}", file=sys.stderr)
        return 2
    if role == "sidecar" and "--handover" in args:
        ok, detail = handover()
        print(f"sidecar: {'ok' if ok else 'FAIL'}: {detail}")
        return 0 if ok else 1
    ok, detail = {"api": check_api, "worker": check_worker, "flower": check_flower,
                  "sidecar": lambda: check_sidecar(live)}[role]()
    print(f"{role}: {'ok' if ok else 'FAIL'}: {detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

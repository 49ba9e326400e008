"""API cold start: process start -> first 200 on /health (and /health/ready), over several runs.

    .venv/bin/python bench/api_start.py [--runs=5] [--redis=redis://127.0.0.1:6379/4]

A real sidecar runs meanwhile (/health wants a fresh sidecar heartbeat). The API gets its port
from $PORT, as on Cloud Run / Knative. Wall time depends on the machine's load; the CPU seconds
the API's processes used until the first 200 do much less, so both are printed.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.dovecot import free_port  # noqa: E402

ENTRY = "import sys; from launcher.cli import main; sys.exit(main())"


def first_200(url: str, proc: subprocess.Popen, limit: float = 30.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if proc.poll() is not None:
            raise SystemExit(f"api exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"{url}: no 200 within {limit}s")


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its children (Gunicorn's arbiter and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[2] is ppid, fields[3] pgrp (the API runs in its own session/group)
        if int(fields[3]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    runs = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--runs=")), 5))
    redis_url = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--redis=")),
                     "redis://127.0.0.1:6379/4")
    env = {**os.environ, "REDIS_URL": redis_url, "IMAPAPI_DOTENV": "0", "LOG_LEVEL": "warn",
           "PYTHONPATH": str(REPO)}
    env.pop("API_PORT", None)
    sidecar = subprocess.Popen([sys.executable, "-c", ENTRY, "sidecar"], env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        time.sleep(3)
        ready, health, cpu = [], [], []
        for _ in range(runs):
            port = free_port()
            t0 = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-c", ENTRY, "api"],
                                    env={**env, "PORT": str(port)}, start_new_session=True)
            ready.append(first_200(f"http://127.0.0.1:{port}/health/ready", proc) - t0)
            health.append(first_200(f"http://127.0.0.1:{port}/health", proc) - t0)
            cpu.append(cpu_seconds(proc.pid))
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        for name, values in (("/health/ready", ready), ("/health", health)):
            print(f"{name:14} first 200 after start: median {statistics.median(values):.2f} s, "
                  f"min {min(values):.2f} s, max {max(values):.2f} s ({runs} runs)")
        print(f"CPU used by the API's processes until then: median {statistics.median(cpu):.2f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        os.killpg(sidecar.pid, signal.SIGTERM)
        sidecar.wait(15)


if __name__ == "__main__":
    main()

"""launcher.linger.LingerThreadWorker under real Gunicorn: kept-alive reuse, wake-up, keepalive and stop."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Gunicorn:
    def __init__(self, tmp_path: Path, *, threads: int, keepalive: int, linger: float,
                 connections: int = 1000, busy_load: float = float("inf"), timeout: int = 30):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(tmp_path / "gunicorn.log", "wb")
        env = {**os.environ, "TEST_LINGER": str(linger), "TEST_BUSY_LOAD": str(busy_load),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-k",
             "tests.fixtures.lingerapp.CountingLinger", "--threads", str(threads),
             "--keep-alive", str(keepalive), "--graceful-timeout", "10",
             "--worker-connections", str(connections), "--timeout", str(timeout),
             "-b", f"127.0.0.1:{self.port}", "tests.fixtures.lingerapp:app"],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                Conn(self.port).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.log.close()


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def get(self) -> tuple[dict, dict]:
        """One GET on this connection -> (lower-cased headers, JSON body)."""
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 200"), lines[0]
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self._recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        return headers, json.loads(body)

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def closed_within(self, seconds: float) -> float:
        """Seconds until the server closed this idle connection (fails after `seconds`)."""
        start = time.monotonic()
        self.sock.settimeout(seconds)
        assert self.sock.recv(1) == b""
        return time.monotonic() - start

    def close(self):
        self.sock.close()


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(**kwargs) -> Gunicorn:
        started.append(Gunicorn(tmp_path, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_kept_alive_connection_is_served_by_its_lingering_thread(serve):
    server = serve(threads=2, keepalive=5, linger=3)
    conn = Conn(server.port)
    answers = [conn.get() for _ in range(5)]
    # only the accept went through the main thread: requests 2-5 never reached the poller
    counts = [body["enqueued"] for _, body in answers]
    assert counts == counts[:1] * 5
    assert len({body["thread"] for _, body in answers}) == 1
    assert all(headers.get("connection", "").lower() != "close" for headers, _ in answers)


def test_no_thread_lingers_on_a_busy_machine(serve):
    # load average per CPU above BUSY_LOAD_PER_CPU (0 here): gthread's way, every request of a
    # kept-alive connection comes through the poller
    server = serve(threads=2, keepalive=5, linger=3, busy_load=0)
    conn = Conn(server.port)
    conn.get()
    time.sleep(1.2)                     # the main loop has looked at the load
    counts = [conn.get()[1]["enqueued"] for _ in range(4)]
    assert counts == list(range(counts[0], counts[0] + 4))



@pytest.mark.parametrize("busy_load", [0, float("inf")])
def test_heartbeats_keep_the_worker_within_a_short_timeout(serve, busy_load):
    # the worker tells the arbiter it is alive at most once a second (a quarter of a shorter
    # timeout), not on every turn of its loop: busy and idle, a 2 s timeout never kills it
    server = serve(threads=2, keepalive=5, linger=0.05, busy_load=busy_load, timeout=2)
    conn = Conn(server.port)
    pid = conn.get()[1]["pid"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert conn.get()[1]["pid"] == pid
    time.sleep(4)
    assert Conn(server.port).get()[1]["pid"] == pid

def test_second_connection_is_served_while_the_first_lingers_on_the_only_thread(serve):
    server = serve(threads=1, keepalive=5, linger=3)
    first = Conn(server.port)
    first.get()
    time.sleep(0.2)                     # the only thread now waits on `first`
    second = Conn(server.port)
    start = time.monotonic()
    second.get()
    # the wake-up pipe took the thread off `first` at once, not after its 3 s linger
    assert time.monotonic() - start < 1.0
    # `first` went back to the poller and is still served
    start = time.monotonic()
    first.get()
    second.get()
    assert time.monotonic() - start < 1.0


def test_connections_are_counted_back_when_closed(serve):
    # worker_connections 4: a connection leaked from the count (lingered, then closed by the
    # client) would stop the worker accepting after four
    server = serve(threads=2, keepalive=5, linger=3, connections=4)
    for _ in range(12):
        conn = Conn(server.port)
        conn.get()
        conn.get()
        conn.close()                    # while its thread lingers on it
    start = time.monotonic()
    Conn(server.port).get()
    assert time.monotonic() - start < 1.0


def test_keepalive_timeout_counts_from_the_response(serve):
    server = serve(threads=2, keepalive=1, linger=3)   # the linger is capped at keepalive
    conn = Conn(server.port)
    conn.get()
    # gthread checks kept-alive timeouts once per second of its poller loop
    assert 0.9 <= conn.closed_within(3.5) <= 2.5


def test_stop_answers_a_lingering_connection_with_connection_close(serve):
    server = serve(threads=2, keepalive=5, linger=3)
    conn = Conn(server.port)
    conn.get()
    os.kill(_worker_pid(server.proc.pid), signal.SIGTERM)   # while its thread lingers on conn
    time.sleep(0.3)
    headers, _ = conn.get()
    assert headers.get("connection", "").lower() == "close"
    assert conn.closed_within(3) < 3
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0


def _worker_pid(arbiter: int) -> int:
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])

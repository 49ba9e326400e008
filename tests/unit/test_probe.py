"""imap-api-probe's checks and the $PORT rule, on real files and the real Redis."""
from __future__ import annotations

import os
import time

import pytest

from imapapi import keys, probe
from imapapi.settings import ConfigError, Settings
from launcher.serverless import port_from_env

from .api_helpers import app, client  # noqa: F401  (fixtures)


@pytest.mark.parametrize("env, argv, port", [
    ({}, [], 3000),
    ({"PORT": "8080"}, [], 8080),
    ({"PORT": "8080", "API_PORT": "3001"}, [], 3000),      # explicit setting wins (already loaded)
    ({"PORT": "8080"}, ["--api.port=3002"], 3000),
    ({"PORT": ""}, [], 3000),
])
def test_port_from_env(env, argv, port):
    assert port_from_env(Settings(), argv, env).api_port == port


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_bad_port_env_names_port(value):
    with pytest.raises(ConfigError, match="PORT"):
        port_from_env(Settings(), [], {"PORT": value})


def test_worker_heartbeat_fresh_stale_missing(tmp_path, monkeypatch):
    beat = tmp_path / "beat"
    monkeypatch.setenv("IMAPAPI_WORKER_HEARTBEAT", str(beat))
    assert probe.main(["worker"]) == 1
    beat.write_text("x")
    assert probe.main(["worker"]) == 0
    old = time.time() - probe.WORKER_BEAT_STALE - 5
    os.utime(beat, (old, old))
    assert probe.main(["worker"]) == 1


def test_worker_heartbeat_defaults_to_tmpdir(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAPAPI_WORKER_HEARTBEAT", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert probe.worker_beat_file() == tmp_path / "imap-api-worker.heartbeat"


@pytest.fixture
def sidecar_env(monkeypatch, redis_url, redis):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("IMAPAPI_DOTENV", "0")
    monkeypatch.setenv("SIDECAR_ID", "probe-test-0")
    redis.zrem(keys.SIDECARS, "probe-test-0")
    yield redis
    redis.zrem(keys.SIDECARS, "probe-test-0")


def test_sidecar_ready_needs_a_fresh_heartbeat(sidecar_env):
    assert probe.main(["sidecar"]) == 1
    sidecar_env.zadd(keys.SIDECARS, {"probe-test-0": time.time()})
    assert probe.main(["sidecar"]) == 0
    sidecar_env.zadd(keys.SIDECARS, {"probe-test-0": time.time() - 30})
    assert probe.main(["sidecar"]) == 1              # not ready ...
    assert probe.main(["sidecar", "--live"]) == 0    # ... but not dead yet


def test_sidecar_live_passes_when_redis_is_unreachable(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("IMAPAPI_DOTENV", "0")
    assert probe.main(["sidecar", "--live"]) == 0
    assert probe.main(["sidecar"]) == 1


def test_unknown_role_is_a_usage_error():
    assert probe.main(["nope"]) == 2


def test_api_ready_and_live_endpoints(client):
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok", "redis": True}
    assert client.get("/health/live").get_json() == {"status": "ok"}


def test_api_not_ready_when_redis_is_down(app):
    from imapapi import settings as settings_mod

    settings_mod.replace(redis_url="redis://127.0.0.1:1/0")
    resp = app.test_client().get("/health/ready")
    assert resp.status_code == 503 and resp.get_json()["redis"] is False
    assert app.test_client().get("/health/live").status_code == 200


def test_prestop_waits_out_the_sidecars_drain_budget():
    # kubelet's SIGTERM after the hook is a second signal: it would cut the drain short
    assert probe.handover_timeout(Settings(sidecar_drain_budget=110.0)) == 115.0
    assert probe.handover_timeout(Settings()) == Settings().sidecar_drain_budget + 5.0

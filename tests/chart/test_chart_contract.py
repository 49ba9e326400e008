"""Chart <-> program contract: each rendered container's command, args and env (ConfigMap and
Secret values resolved, volume paths mapped to temp dirs) started as a local process against the
test Redis; the probes written in the manifest must then pass. A renamed option, a wrong port or
a probe command the program lacks fails here."""
from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.dovecot import free_port

from .render import FULL, containers, find, render, workloads

pytest.importorskip("helm_python")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_DB = int(os.environ.get("IMAPAPI_TEST_CHART_REDIS_DB", "9"))


class Container:
    """One container of a rendered workload, run as a local process."""

    def __init__(self, workload: dict, spec: dict, docs: list[dict], root: Path):
        self.workload = workload
        self.spec = spec
        kind, name = workload["kind"], workload["metadata"]["name"]
        self.pod = f"{name}-0" if kind == "StatefulSet" else f"{name}-7d9f8-abcde"
        self.name = name
        self.root = root / name
        self.paths = self._mount(docs)
        self.env = self._env(docs)
        self.ports = {p["name"]: p["containerPort"] for p in spec.get("ports", [])}
        self.proc: subprocess.Popen | None = None

    def _mount(self, docs) -> dict[str, Path]:
        """mountPath -> local path: configMap/secret items written out, emptyDirs as dirs."""
        volumes = {v["name"]: v for v in self.workload["spec"]["template"]["spec"]["volumes"]}
        paths = {}
        for mount in self.spec.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            local = self.root / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                data = find(docs, "ConfigMap", volume["configMap"]["name"])[0]["data"]
                for key, text in data.items():
                    (local / key).write_text(text)
                paths[mount["mountPath"]] = local / mount["subPath"] if "subPath" in mount else local
            elif "secret" in volume:
                data = _secret(docs, volume["secret"]["secretName"])
                for item in volume["secret"].get("items", [{"key": k, "path": k} for k in data]):
                    (local / item["path"]).write_text(data[item["key"]])
                paths[mount["mountPath"]] = local
            else:
                paths[mount["mountPath"]] = local
        return paths

    def _local(self, value: str) -> str:
        for inside, local in sorted(self.paths.items(), key=lambda kv: -len(kv[0])):
            if value == inside or value.startswith(inside.rstrip("/") + "/"):
                return str(local) + value[len(inside):]
        return value

    def _env(self, docs) -> dict[str, str]:
        env = {}
        for var in self.spec.get("env", []):
            if "value" in var:
                env[var["name"]] = self._local(var["value"])
                continue
            source = var["valueFrom"]
            if "fieldRef" in source:
                assert source["fieldRef"]["fieldPath"] == "metadata.name", var
                env[var["name"]] = self.pod
                continue
            ref = source["secretKeyRef"]
            data = _secret(docs, ref["name"])
            if ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
            else:
                assert ref.get("optional"), f"{self.name}: {var['name']} needs {ref} (not rendered)"
        return env

    def _argv(self, command: list[str]) -> list[str]:
        exe = BIN / command[0]
        assert exe.exists(), f"{self.name}: {command[0]} is not a console script of the project"
        return [str(exe), *command[1:]]

    def process_env(self, extra: dict | None = None) -> dict[str, str]:
        return {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(self.root),
                **self.env, **(extra or {})}

    def start(self, log_dir: Path) -> None:
        argv = self._argv(self.spec["command"] + self.spec.get("args", []))
        log = open(log_dir / f"{self.name}.log", "wb")
        self.proc = subprocess.Popen(argv, env=self.process_env(), cwd=self.root, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()

    def probe(self, probe: dict, extra_env: dict | None = None) -> tuple[bool, str]:
        if "httpGet" in probe:
            port = probe["httpGet"]["port"]
            port = self.ports[port] if isinstance(port, str) else port
            url = f"http://127.0.0.1:{port}{probe['httpGet']['path']}"
            try:
                resp = requests.get(url, timeout=probe.get("timeoutSeconds", 1))
            except requests.RequestException as exc:
                return False, f"{url}: {exc}"
            return 200 <= resp.status_code < 400, f"{url}: {resp.status_code}"
        if "exec" in probe:
            result = subprocess.run(self._argv(probe["exec"]["command"]),
                                    env=self.process_env(extra_env), cwd=self.root,
                                    capture_output=True, text=True,
                                    timeout=probe.get("timeoutSeconds", 1) + 10)
            return result.returncode == 0, (result.stdout + result.stderr).strip()
        if "tcpSocket" in probe:
            import socket

            port = probe["tcpSocket"]["port"]
            port = self.ports[port] if isinstance(port, str) else port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return True, f"tcp {port} open"
            except OSError as exc:
                return False, f"tcp {port}: {exc}"
        raise AssertionError(f"unknown probe {probe}")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _secret(docs, name) -> dict[str, str]:
    found = find(docs, "Secret", name)
    assert found, f"Secret {name} is referenced but not rendered"
    return {k: base64.b64decode(v).decode() for k, v in (found[0].get("data") or {}).items()}


def wait_probe(container: Container, kind: str, budget: float | None = None) -> str:
    probe = container.spec.get(f"{kind}Probe")
    assert probe, f"{container.name}: no {kind} probe"
    if budget is None:
        budget = min(90.0, probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))
    deadline = time.monotonic() + budget
    detail = ""
    while time.monotonic() < deadline:
        assert container.proc.poll() is None, f"{container.name} exited {container.proc.returncode}"
        ok, detail = container.probe(probe)
        if ok:
            return detail
        time.sleep(0.5)
    raise AssertionError(f"{container.name} {kind} probe did not pass in {budget:.0f}s: {detail}")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    import redis as redis_lib

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    # no token is created by hand: the chart's bootstrap token lets the API start beyond loopback
    values = {
        "redis": {"enabled": False}, "externalRedis": {"url": url},
        "api": {"containerPort": free_port()},
        "flower": {"enabled": True, "containerPort": free_port(), "basicAuth": {"password": "pw"}},
        "sidecar": {"replicas": 1},
        "secrets": {"webhookSecret": "contract-secret"},
        "config": {"service": {"commandTimeout": "5s"}, "api": {"workers": 1}},
    }
    docs = render(values)
    root = Path(tempfile.mkdtemp(prefix="imapapi-contract-"))
    logs = tmp_path_factory.mktemp("contract-logs")
    started = [Container(w, c, docs, root) for w in workloads(docs) for c in containers(w)]
    for container in started:
        container.start(logs)
    try:
        yield {c.name.removeprefix(f"{FULL}-"): c for c in started}, logs, client
    finally:
        for container in started:   # all at once: each takes a few seconds to wind down
            container.terminate()
        for container in started:
            container.stop()
        client.flushdb()
        client.close()
        shutil.rmtree(root, ignore_errors=True)


def _logs(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                     for p in sorted(logs.glob("*.log")))


def test_every_container_passes_its_probes(deployed):
    running, logs, _ = deployed
    assert set(running) == {"api", "worker-requests", "worker-submit", "worker-webhooks",
                            "sidecar", "flower"}
    try:
        for container in running.values():
            for kind in ("startup", "readiness", "liveness"):
                if container.spec.get(f"{kind}Probe"):
                    wait_probe(container, kind)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(logs)}") from None


def test_settings_from_the_chart_reach_the_processes(deployed):
    running, logs, _ = deployed
    api = running["api"]
    wait_probe(api, "readiness")
    # /health wants a live sidecar too: the chart's sidecar heartbeats under its pod name
    health = requests.get(f"http://127.0.0.1:{api.ports['http']}/health", timeout=5)
    assert health.status_code == 200 and health.json()["sidecars"] == 1, _logs(logs)
    # the bootstrap token from the rendered Secret is an API token; nothing else gets in
    token = api.env["API_BOOTSTRAP_TOKEN"]
    url = f"http://127.0.0.1:{api.ports['http']}/v1/settings"
    assert requests.get(url, timeout=5).status_code == 401
    resp = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 200, _logs(logs)
    flower = running["flower"]
    port = flower.ports["http"]
    assert requests.get(f"http://127.0.0.1:{port}/api/workers", timeout=5).status_code == 401
    assert requests.get(f"http://127.0.0.1:{port}/api/workers", auth=("admin", "pw"),
                        timeout=5).status_code == 200


def test_sidecar_prestop_hands_over_and_stops(deployed):
    running, logs, client = deployed
    sidecar = running["sidecar"]
    wait_probe(sidecar, "readiness")
    pre_stop = sidecar.spec["lifecycle"]["preStop"]
    start = time.monotonic()
    # in a pod the sidecar is PID 1; here the hook is pointed at the local process
    ok, detail = sidecar.probe(pre_stop, extra_env={"IMAPAPI_SIDECAR_PID": str(sidecar.proc.pid)})
    assert ok, f"{detail}\n{_logs(logs)}"
    assert time.monotonic() - start < sidecar.workload["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
    assert client.zscore("ia:sidecars", sidecar.pod) is None
    sidecar.proc.wait(10)

"""The container images, built here with podman and run from their mounted filesystems.

No container runtime can start containers in this sandbox, so each role runs with chroot into
the image's (read-only) filesystem as the image's user, with the declared volumes bound
writable, against the test Redis and Dovecot over loopback. Skip with IMAPAPI_SKIP_IMAGE_TEST=1
or `-m "not image"`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from tests.fixtures.dovecot import free_port

from . import images

pytestmark = [
    pytest.mark.image,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get("IMAPAPI_SKIP_IMAGE_TEST") == "1",
                       reason="IMAPAPI_SKIP_IMAGE_TEST=1"),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman build, mount and chroot need root"),
]

API_TAG, SIDECAR_TAG = "localhost/imap-api-test:api", "localhost/imap-api-test:sidecar"
USER = "10001:10001"
STOP_WITHIN = 10.0
REDIS_DB = int(os.environ.get("IMAPAPI_TEST_IMAGE_REDIS_DB", "10"))


@pytest.fixture(scope="module")
def built():
    images.ensure_tools()
    base = images.ensure_base()
    seconds = {"api": images.build("Dockerfile.api", API_TAG, base),
               "sidecar": images.build("Dockerfile.sidecar", SIDECAR_TAG, base)}
    print(f"\nimage build: api {seconds['api']:.0f} s, sidecar {seconds['sidecar']:.0f} s; "
          f"size: api {images.size_mb(API_TAG):.0f} MB, sidecar {images.size_mb(SIDECAR_TAG):.0f} MB")
    return seconds


@pytest.fixture(scope="module")
def redis_db():
    import redis as redis_lib

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    yield url, client
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def api_image(built):
    with images.mounted(API_TAG) as image:
        yield image


@pytest.fixture(scope="module")
def sidecar_image(built):
    with images.mounted(SIDECAR_TAG) as image:
        yield image


class Role:
    """One role started from an image; stop() sends SIGTERM and records how long it took."""

    def __init__(self, image, name, args, env, log_dir):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = image.popen(args, env=env, log=log)
        self.stopped_in: float | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> float:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_WITHIN + 5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.stopped_in = time.monotonic() - start
        return self.stopped_in


def wait_for(check, what: str, timeout: float = 60.0, roles=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for role in roles:
            assert role.alive(), f"{role.name} exited {role.proc.returncode}\n{role.log()}"
        try:
            last = check()
            if last:
                return last
        except Exception as exc:   # not up yet
            last = exc
        time.sleep(0.3)
    logs = "\n".join(f"--- {r.name}\n{r.log()}" for r in roles)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})\n{logs}")


@pytest.fixture(scope="module")
def running(api_image, sidecar_image, redis_db, dovecot, tmp_path_factory):
    """sidecar (sidecar image), worker and API (api image, API port from $PORT), flower."""
    url, client = redis_db
    logs = tmp_path_factory.mktemp("image-logs")
    port, flower_port = free_port(), free_port()
    # one encryption key for every process (as the chart's Secret gives them), and the API
    # token an operator creates before the API may listen beyond loopback
    from imapapi import tokens

    token, _ = tokens.create(client, ["*"], description="image test")
    env = {"REDIS_URL": url, "COMMAND_TIMEOUT": "5s", "LOG_LEVEL": "info",
           "ENCRYPTION_KEY": "image-test-key-" + "x" * 20}
    roles = {
        "sidecar": Role(sidecar_image, "sidecar", None, {**env, "SIDECAR_ID": "image-sc-0"}, logs),
        "worker": Role(api_image, "worker", ["worker"], env, logs),
        "api": Role(api_image, "api", None, {**env, "PORT": str(port)}, logs),
        "flower": Role(api_image, "flower", ["flower", f"--flower.port={flower_port}"],
                       {**env, "FLOWER_PORT": str(flower_port)}, logs),
    }
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(base + "/health", timeout=2).status_code == 200,
                 "API /health 200", timeout=90, roles=list(roles.values()))
        yield {"roles": roles, "base": base, "flower": flower_port, "redis": client,
               "auth": {"Authorization": f"Bearer {token}"}}
    finally:
        for role in roles.values():
            if role.alive():
                role.stop()


def test_images_run_as_a_numeric_non_root_user_with_labels(built):
    for tag in (API_TAG, SIDECAR_TAG):
        info = images.inspect(tag)
        config = info["Config"]
        assert config["User"] == USER
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == "0.1.0"
        assert labels["org.opencontainers.image.base.name"] == images.BASE
        healthcheck = info.get("Healthcheck") or config.get("Healthcheck")   # podman / docker
        assert healthcheck["Test"][:2] == ["CMD", "imap-api-probe"], healthcheck
        assert sorted(config["Volumes"]) == ["/tmp", "/var/lib/imap-api"]


def test_no_compiler_in_the_final_images(api_image, sidecar_image):
    for image in (api_image, sidecar_image):
        for tool in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make"):
            assert not (image.root / tool).exists(), tool
        assert not list((image.root / "opt/imap-api/bin").glob("pip*"))


def test_root_filesystem_read_only_except_the_volumes(api_image):
    assert not api_image.writable("/opt/imap-api") and not api_image.writable("/etc")
    assert api_image.writable("/tmp") and api_image.writable("/var/lib/imap-api")


def test_api_answers_health_and_a_listing(running, dovecot):
    api = running["base"]
    assert requests.get(api + "/health/ready", timeout=5).json()["redis"] is True
    user, password = f"img{os.getpid()}", "pw-image-test"
    dovecot.add_user(user, password)
    dovecot.append(user, password, "INBOX",
                   b"From: a@example.com\r\nTo: b@example.com\r\nSubject: from the image test\r\n"
                   b"\r\nhello\r\n")
    auth = running["auth"]
    resp = requests.post(api + "/v1/account", json=dovecot.account_payload(user, user, password),
                         headers=auth, timeout=10)
    assert resp.status_code == 200, resp.text
    # the sidecar from its own image connects the account ...
    wait_for(lambda: requests.get(f"{api}/v1/account/{user}", headers=auth, timeout=5).json().get("state")
             == "connected", "account connected", timeout=60, roles=running["roles"].values())
    # ... and the listing goes API -> worker (a task it consumes) -> sidecar -> Dovecot
    listing = requests.get(f"{api}/v1/account/{user}/messages", params={"path": "INBOX"},
                           headers=auth, timeout=15)
    assert listing.status_code == 200, listing.text
    assert [m["subject"] for m in listing.json()["messages"]] == ["from the image test"]


def test_flower_answers(running):
    resp = requests.get(f"http://127.0.0.1:{running['flower']}/healthcheck", timeout=5)
    assert resp.status_code == 200


def test_healthcheck_command_passes_for_every_role(running, api_image, sidecar_image):
    # the image's HEALTHCHECK, run like Docker does: inside the container's view, per role
    env = {"REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}", "SIDECAR_ID": "image-sc-0",
           "ENCRYPTION_KEY": "image-test-key-" + "x" * 20,
           "FLOWER_PORT": str(running["flower"])}
    for image, role in ((sidecar_image, "sidecar"), (api_image, "worker"), (api_image, "flower")):
        proc = image.popen(entrypoint=["imap-api-probe"], args=[role], env=env,
                           log=subprocess.PIPE)
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, (role, out)


def test_every_role_runs_as_the_image_user(running):
    for role in running["roles"].values():
        assert images.uid_of(role.proc.pid) == 10001, role.name


def test_sigterm_stops_every_role_within_10_s(running):
    for name in ("api", "flower", "worker", "sidecar"):
        role = running["roles"][name]
        took = role.stop()
        assert role.proc.returncode is not None and took < STOP_WITHIN, (name, took, role.log())
    # the sidecar left the heartbeat set on its way out (its accounts are free for others)
    assert running["redis"].zscore("ia:sidecars", "image-sc-0") is None

"""Build Dockerfile.api / Dockerfile.sidecar with podman (chroot isolation, local mmdebstrap base)
and run a role from an image's mounted filesystem with chroot, as the image's user."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The base rootfs tarball is kept here between runs (mmdebstrap takes ~1 min); podman's own
# storage keeps the layers, so a rerun only rebuilds the layers whose inputs changed.
CACHE = Path(os.environ.get("IMAPAPI_IMAGE_CACHE", "/var/cache/imap-api-test"))
BASE = "localhost/imapapi-test-base:bookworm"
CA = "/etc/ssl/certs/ca-certificates.crt"
TOOLS = {"podman": "podman", "buildah": "buildah", "mmdebstrap": "mmdebstrap"}


def run(*cmd: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {result.returncode}\n{result.stdout[-3000:]}"
                           f"\n{result.stderr[-3000:]}")
    return result


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", env=env)
        run("apt-get", "install", "-y", "--no-install-recommends", *missing, env=env)


def ensure_base() -> str:
    """A Debian bookworm minbase with python3 + venv, made by mmdebstrap, imported once."""
    if subprocess.run(["podman", "image", "exists", BASE]).returncode == 0:
        return BASE
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / "bookworm-python3.tar"
    if tarball.is_dir():
        # left by an older version of this helper: mmdebstrap guessed the format from the
        # ".partial" suffix and wrote a directory, which podman import refuses
        shutil.rmtree(tarball)
    if not tarball.exists():
        partial = tarball.with_suffix(".partial")
        if partial.is_dir():
            shutil.rmtree(partial)
        run("mmdebstrap", "--variant=minbase", "--format=tar",
            "--include=python3,python3-venv,ca-certificates", "bookworm", str(partial))
        partial.rename(tarball)
    run("podman", "import", str(tarball), BASE)
    return BASE


def build(dockerfile: str, tag: str, base: str) -> float:
    """podman build of one Dockerfile; -> seconds it took."""
    start = time.monotonic()
    run("podman", "build", "--isolation=chroot", "--format", "docker",
        "-v", f"{CA}:{CA}:ro", "--build-arg", f"BASE={base}",
        "--build-arg", f"REVISION={_revision()}", "-f", str(REPO / dockerfile), "-t", tag,
        str(REPO), timeout=1800)
    return time.monotonic() - start


def _revision() -> str:
    try:
        return run("git", "-C", str(REPO), "rev-parse", "--short", "HEAD").stdout.strip()
    except Exception:
        return "unknown"


def inspect(tag: str) -> dict:
    return json.loads(run("podman", "image", "inspect", tag).stdout)[0]


def size_mb(tag: str) -> float:
    return inspect(tag)["Size"] / 1e6


class Mounted:
    """An image's filesystem, read-only as podman mounts it, with fresh writable dirs bound
    over its declared volumes (what a read-only root filesystem pod gets) plus /dev and /proc."""

    def __init__(self, tag: str):
        self.tag = tag
        config = inspect(tag)["Config"]
        self.config = config
        self.user = config["User"]
        self.env = dict(item.split("=", 1) for item in config.get("Env", []))
        self.entrypoint = config.get("Entrypoint") or []
        self.cmd = config.get("Cmd") or []
        self.root: Path | None = None
        self.volumes: dict[str, Path] = {}
        self._mounts: list[Path] = []

    def __enter__(self) -> "Mounted":
        self.root = Path(run("podman", "image", "mount", self.tag).stdout.strip())
        try:
            for volume in sorted(self.config.get("Volumes") or {}):
                host = Path(tempfile.mkdtemp(prefix="imapapi-volume-"))
                uid, gid = (int(x) for x in self.user.split(":"))
                os.chown(host, uid, gid)
                self._bind(host, volume)
                self.volumes[volume] = host
            self._bind(Path("/dev"), "/dev")
            target = self.root / "proc"
            run("mount", "-t", "proc", "proc", str(target))
            self._mounts.append(target)
        except Exception:
            self.__exit__()
            raise
        return self

    def _bind(self, host: Path, inside: str) -> None:
        target = self.root / inside.lstrip("/")
        run("mount", "--bind", str(host), str(target))
        self._mounts.append(target)

    def __exit__(self, *exc) -> None:
        for target in reversed(self._mounts):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        self._mounts.clear()
        subprocess.run(["podman", "image", "unmount", self.tag], capture_output=True)
        for host in self.volumes.values():
            shutil.rmtree(host, ignore_errors=True)

    def writable(self, path: str) -> bool:
        """Can the image's user write `path` (inside the image)?"""
        probe = f"{path.rstrip('/')}/.imapapi-write-test"
        result = subprocess.run(["chroot", f"--userspec={self.user}", str(self.root),
                                 "/bin/sh", "-c", f": > {probe} && rm -f {probe}"],
                                capture_output=True)
        return result.returncode == 0

    def popen(self, args: list[str] | None = None, env: dict | None = None, log=None,
              entrypoint: list[str] | None = None) -> subprocess.Popen:
        """Start the image's entrypoint (+ args, default its CMD) as its user, like a container
        with host networking would."""
        command = (self.entrypoint if entrypoint is None else entrypoint) + (
            self.cmd if args is None else args)
        full_env = {**self.env, **(env or {})}
        argv = ["chroot", f"--userspec={self.user}", str(self.root), "/usr/bin/env", "-i",
                *(f"{k}={v}" for k, v in full_env.items()), *command]
        return subprocess.Popen(argv, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


@contextmanager
def mounted(tag: str):
    with Mounted(tag) as image:
        yield image


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")

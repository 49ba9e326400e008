"""requirements.lock (what the images install) pins every dependency of pyproject.toml, hashed."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_lock_pins_every_dependency_with_hashes():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower(): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    missing = sorted(_name(d) for d in deps if _name(d) not in pinned)
    assert not missing, f"not in requirements.lock (run bash scripts/lock.sh): {missing}"
    lines = lock.splitlines()
    unhashed = [line for i, line in enumerate(lines)
                if re.match(r"^[A-Za-z0-9_.-]+==", line) and "--hash=sha256:" not in lines[i + 1]]
    assert not unhashed, unhashed

#!/usr/bin/env bash
# Shared by run.sh and test.sh: create .venv (Python 3.11+) and install the project into it.
# Usage: bash scripts/setup.sh [extras]   e.g. "test"
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive

if [ ! -x .venv/bin/python ]; then
    py="${PYTHON:-}"
    for candidate in python3.11 python3.12 python3.13 python3; do
        [ -n "$py" ] && break
        command -v "$candidate" >/dev/null && py="$candidate"
    done
    if ! "$py" -m venv .venv; then
        # Debian ships venv separately; we run as root in CI, so install it and retry.
        rm -rf .venv
        apt-get update && apt-get install -y python3-venv
        "$py" -m venv .venv
    fi
fi

# Reinstall only when the dependency list changed (the install is editable, code is live).
spec=".${extras:+[$extras]}"
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e "$spec"
    touch "$stamp"
fi

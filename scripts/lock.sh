#!/usr/bin/env bash
# Regenerate requirements.lock (the images' pinned, hashed dependencies) from pyproject.toml.
# pip-tools runs from its own throw-away venv so the project's venv stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${TMPDIR:-/tmp}/imapapi-piptools"
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q pip-tools; }
# start from the current pins: only what pyproject.toml changed moves
cp requirements.lock requirements.lock.new
"$tools/bin/pip-compile" -q --generate-hashes --strip-extras --allow-unsafe \
    --no-emit-index-url --no-emit-find-links --output-file=requirements.lock.new pyproject.toml scripts/lock-extra.in
{ echo "# The image's dependencies, pinned with hashes (installed with --require-hashes)."
  echo "# Regenerate after changing pyproject.toml dependencies: bash scripts/lock.sh"
  sed "s/requirements.lock.new/requirements.lock/" requirements.lock.new; } > requirements.lock
rm requirements.lock.new

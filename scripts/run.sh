#!/usr/bin/env bash
# Run everything in one process tree (API + Celery worker + sidecar); options go to `imap-api serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/imap-api serve "$@"

#!/usr/bin/env bash
# The test command (README, CI): install, make sure Dovecot and Redis are there, run pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test

# Integration tests run a real Dovecot from a temp dir; install the package when missing.
.venv/bin/python -c 'from tests.fixtures.dovecot import ensure_dovecot_installed as e; e()'

# Redis is expected at 127.0.0.1:6379 (the machine starts one); start one if it is not up.
if ! .venv/bin/python -c 'import redis; redis.Redis(socket_connect_timeout=2).ping()' 2>/dev/null; then
    command -v redis-server >/dev/null || { apt-get update && apt-get install -y redis-server; }
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    sleep 1
fi

set +e
.venv/bin/python -m pytest -q -ra --durations=10 "$@"
rc=$?
set -e
# pytest exits 5 when nothing was collected: that is a failure, never a silent pass.
[ "$rc" -eq 5 ] && echo "test.sh: no tests were run" >&2
exit "$rc"

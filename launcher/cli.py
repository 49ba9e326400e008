"""The `imap-api` console script: serve (all in one), api, worker, sidecar, flower."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from imapapi import __version__
from imapapi.logging import gunicorn_level, level_of, setup
from imapapi.settings import (OPTIONS, ConfigError, Settings, configure, die, load_settings,
                              parse_cli, redacted)

from . import admin
from .serverless import port_from_env

COMMANDS = ("serve", "api", "worker", "sidecar", "flower")
_USAGE = """imap-api <command> [--option=value ...]

commands:
  serve     API (Gunicorn) + Celery worker + sidecar (+ Flower with --flower), supervised;
            starts an embedded Redis under the state dir when no Redis URL is configured
  api       the HTTP API under Gunicorn
  worker    a Celery worker (threads pool)
  sidecar   the IMAP connection runtime
  flower    the Flower dashboard for the Celery workers
  tokens    create --scope=api|metrics|ui|* [--account=ID] [--description=T] | list | revoke ID
  secrets   rotate --new-key-file=F | check | genkey FILE   (encryption of stored secrets)

options (environment > CLI > --config=FILE.toml > defaults):
{options}
  --config=PATH                     IMAPAPI_CONFIG
flags: --flower (serve), --flower.port=5555 (serve, flower)
"""


def _options_help() -> str:
    """One line per option in settings.OPTIONS, so the help never falls behind the settings."""
    defaults = Settings()
    lines = []
    for name, (attr, env, kind) in OPTIONS.items():
        default = getattr(defaults, attr)
        shown = "" if default is None else f" ({_written(kind, default)})"
        option = f"--{name}={_METAVAR[kind]}"
        lines.append(f"  {option:<34}{env}{shown}")
    return "\n".join(lines)


_METAVAR = {"redis": "URL", "str": "VALUE", "port": "PORT", "posint": "N", "level": "LEVEL",
            "duration": "DURATION", "size": "SIZE", "bool": "0|1"}


def _written(kind: str, value) -> str:
    """A default the way one would write it on the command line (10s, 25M), not as stored."""
    if kind == "duration":
        return f"{value:g}s"
    if kind == "bool":
        return "1" if value else "0"
    if kind == "size":
        for unit, factor in (("G", 1024**3), ("M", 1024**2), ("k", 1024)):
            if value % factor == 0:
                return f"{value // factor}{unit}"
    return str(value)


USAGE = _USAGE.format(options=_options_help())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imap-api", usage=USAGE, add_help=False)
    parser.add_argument("command", nargs="?", choices=COMMANDS)
    parser.add_argument("--flower", action="store_true")
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--version", action="store_true")
    return parser


def _split_flower_port(argv: list[str]) -> tuple[list[str], int]:
    """`--flower.port=N` is a process flag, not a setting; pull it out before load_settings."""
    port, rest = 5555, []
    for arg in argv:
        if arg.startswith("--flower.port="):
            try:
                port = int(arg.split("=", 1)[1])
            except ValueError:
                die(f"--flower.port: not a number: {arg.split('=', 1)[1]!r}")
            if not 1 <= port <= 65535:
                die(f"--flower.port: port out of range 1..65535: {port}")
        else:
            rest.append(arg)
    return rest, port


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in admin.COMMANDS:
        return admin.main(argv)
    argv, flower_port = _split_flower_port(argv)
    try:
        settings = port_from_env(load_settings(argv), argv)
        _, _, rest = parse_cli(argv)
    except ConfigError as exc:
        die(str(exc))
    parser = _parser()
    args, unknown = parser.parse_known_args(rest)
    if args.version:
        print(f"imap-api {__version__}")
        return 0
    if args.help or not args.command:
        print(USAGE, file=sys.stdout if args.help else sys.stderr)
        return 0 if args.help else 2
    if unknown:
        die(f"unexpected argument {unknown[0]!r} (options take the form --name=value)")
    configure(settings)
    log = setup(settings.log_level, args.command)
    if args.command == "serve":
        from .serve import serve   # lazy: the embedded-server machinery costs the api's start time

        option_args = [a for a in argv if a.startswith("--") and "=" in a]
        _serve_key(settings)
        return serve(settings, option_args, flower=args.flower, flower_port=flower_port)
    if settings.redis_url is None:
        die(f"no Redis URL configured for `{args.command}` (set REDIS_URL or --dbs.redis=URL; "
            "only `serve` starts an embedded server)")
    log.info("imap-api %s %s using Redis %s", args.command, __version__, redacted(settings.redis_url))
    _check_secrets(settings, args.command)
    return {"api": run_api, "worker": run_worker, "sidecar": run_sidecar,
            "flower": lambda s: run_flower(s, flower_port)}[args.command](settings)


def _serve_key(settings: Settings) -> None:
    """`serve` with no key configured creates <stateDir>/secret.key (0600) before its children
    start, so the one-command start encrypts too and every child reads the same key."""
    from imapapi import crypto

    try:
        ring = crypto.load_keyring(encryption_key=settings.encryption_key,
                                   key_file=settings.key_file, state_dir=settings.state_dir,
                                   generate=True)
    except crypto.KeyConfigError as exc:
        die(str(exc))
    if not (settings.encryption_key or settings.key_file):
        logging.getLogger("imapapi.serve").info(
            "stored secrets are encrypted with %s/%s (key id %s)", settings.state_dir,
            crypto.KEY_FILE_NAME, ring.primary_id)


def _check_secrets(settings: Settings, command: str) -> None:
    """Refuse to start (one line) when stored secrets need a key this process lacks; encrypt
    secrets an older version stored in clear. Flower never reads them."""
    if command == "flower":
        return
    from imapapi import crypto, vault
    from imapapi.settings import get_redis

    try:
        vault.startup(get_redis(), settings)
    except crypto.CryptoError as exc:
        die(str(exc))
    if command == "api":
        from imapapi import tokens

        if tokens.bootstrap(get_redis(), settings.api_bootstrap_token):
            logging.getLogger("imapapi.serve").info(
                "added the api.bootstrapToken as a '*' token (id %s)",
                tokens.public_id(tokens.digest(settings.api_bootstrap_token)))
        problem = tokens.startup_problem(settings, get_redis())
        if problem:
            die(problem)


def prometheus_dir(settings: Settings) -> str:
    """PROMETHEUS_MULTIPROC_DIR for Gunicorn workers: set, existing and emptied at API start."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = str(Path(settings.state_dir).resolve() / f"prometheus-{settings.api_port}")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):   # counters of a previous run must not leak in
        stale.unlink(missing_ok=True)
    return path


# Gunicorn worker classes by IMAPAPI_API_WORKER: linger (the default, launcher/linger.py: a
# kept-alive connection's next request without the poller's round trip, ~15 % less API CPU
# per read), or gthread (Gunicorn's own, for A/B benches or as a fallback)
WORKER_CLASSES = {"linger": "launcher.linger.LingerThreadWorker", "gthread": "gthread"}


def _worker_class() -> str:
    name = os.environ.get("IMAPAPI_API_WORKER", "linger")
    if name not in WORKER_CLASSES:
        die(f"IMAPAPI_API_WORKER: one of {', '.join(WORKER_CLASSES)}, not {name!r}")
    return WORKER_CLASSES[name]


def gunicorn_options(settings: Settings) -> dict:
    def child_exit(server, worker):
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)

    return {
        "bind": f"[{settings.api_host}]:{settings.api_port}" if ":" in settings.api_host
        else f"{settings.api_host}:{settings.api_port}",
        "workers": settings.api_workers,
        # requests mostly wait on a task result: threads keep a worker from starving
        "worker_class": _worker_class(),
        "threads": 32,
        "control_socket_disable": True,
        "timeout": max(60, int(settings.command_timeout * 3)),
        "graceful_timeout": 5,
        "keepalive": 5,
        "loglevel": gunicorn_level(settings.log_level),
        "accesslog": "-" if settings.log_level in ("debug", "trace") else None,
        "child_exit": child_exit,
        "proc_name": "imap-api-api",
        # header and query limits set explicitly (docs/security.md): request line incl. the
        # query string (and ?access_token=) 8190 bytes, 100 headers of at most 8190 bytes each
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        # the access log (debug) shows the path without the query: ?access_token= stays out
        "access_log_format": '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss',
        # import the app once in the arbiter and fork it: workers start in milliseconds and
        # share its pages (start time counts where containers scale to zero)
        "preload_app": True,
    }


def run_api(settings: Settings) -> int:
    """Gunicorn with the app factory (`app:create_app()`), gthread workers, Prometheus multiproc."""
    prometheus_dir(settings)
    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(settings)

    class Application(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self):
            from app import create_app   # lazy: loaded in each Gunicorn worker, not the arbiter

            return create_app()

    Application().run()
    return 0


def run_worker(settings: Settings) -> int:
    """A Celery worker on settings.worker_queues; threads pool because tasks wait on Redis/IMAP I/O."""
    from celery_tasks.app import celery   # lazy: only the worker process loads the task modules

    level = logging.getLevelName(level_of(settings.log_level))
    if level != "DEBUG":
        # two INFO lines per task (with the result's repr) cost latency and would log mail content
        for name in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # Task events cost ~1 ms per task. Flower switches them on by itself (its enable_events
    # broadcast) while it runs, so -E is only forced with worker.taskEvents=1.
    # the threads pool with IMAP hand-offs run on the consumer loop (celery_tasks/pool.py);
    # Celery's --pool takes only its own names, a class comes through worker_pool
    celery.conf.worker_pool = "celery_tasks.pool:TaskPool"
    celery.worker_main([
        "worker", f"--concurrency={settings.worker_concurrency}",
        *(["-E"] if settings.worker_task_events else []),
        f"--queues={settings.worker_queues}",
        f"--loglevel={level}", "--without-gossip", "--without-mingle",
        f"--hostname=imapapi-{os.getpid()}@%h",
    ])
    return 0


def run_sidecar(settings: Settings) -> int:
    from sidecar.main import run   # lazy: each command loads only its own runtime

    result = run(settings)
    return int(result or 0)


def run_flower(settings: Settings, port: int = 5555) -> int:
    from celery_tasks.app import celery   # lazy: see run_worker

    os.environ.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
    celery.start(["flower", f"--address={settings.api_host}", f"--port={port}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

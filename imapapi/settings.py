"""Typed process settings: environment > CLI arguments > TOML config file > defaults."""
from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from .logging import LEVELS


class ConfigError(ValueError):
    """Bad configuration; the process prints the message as one line and exits non-zero."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value, *, name: str) -> float:
    """'10s', '500ms', '2m' or a bare number of seconds -> seconds (float)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{name}: cannot parse duration {value!r} (use e.g. 10s, 500ms, 2m)")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"{name}: duration must be positive, got {value!r}")
    return seconds


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(value, *, name: str) -> int:
    """'25M', '512k', '1G' or a bare number of bytes -> bytes (1024-based)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"{name}: cannot parse size {value!r} (use e.g. 25M, 512k)")
    power = " kmgt".index((match.group(2) or " ").lower())
    return int(match.group(1)) * 1024**power


@dataclass(frozen=True)
class Settings:
    """One value per option; see OPTIONS for the CLI/env names."""

    redis_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 3000
    log_level: str = "info"
    command_timeout: float = 10.0
    state_dir: str = ".state"
    api_workers: int = 2
    worker_concurrency: int = 32
    worker_queues: str = "celery,submit,webhooks"
    sidecar_id: str | None = None
    sidecar_pool: int = 32
    # Account leases (imapapi.leases): a killed replica's accounts move after at most this.
    sidecar_lease_ttl: float = 10.0
    # SIGTERM: the accounts are handed over paced for at most this long (sidecar.handover),
    # then the rest LOGOUT at once. Must fit the stop timeout: the chart sets it from the pod's
    # terminationGracePeriodSeconds (minus 15 s for the LOGOUTs and the exit).
    sidecar_drain_budget: float = 18.0
    # Connection setups per sidecar: at most `ramp` at once and `rate` started per second, so a
    # handover of thousands of accounts is no login storm.
    sidecar_connect_ramp: int = 32
    sidecar_connect_rate: int = 200
    # IMAP logins per second per IMAP host across all replicas (providers lock accounts out
    # on login floods).
    imap_login_rate: int = 200
    max_accounts_per_sidecar: int = 20000
    status_sweep: float = 3.0   # LIST-STATUS sweep (sidecar.sync.notify.Watch: >= 30 s without it)
    # emailId/threadId (sidecar/imap/objectid.py): OBJECTID, else Dovecot's X-GUID; false: none
    email_id: bool = True
    submit_max_size: int = 25 * 1024 * 1024
    smtp_timeout: float = 30.0       # per SMTP socket operation (connect, greeting, each reply)
    webhook_timeout: float = 10.0
    webhook_secret: str | None = None
    # Retry a failing webhook for at least this long before dead-lettering it.
    webhook_retry_window: float = 3600.0
    # Approximate cap per account stream (XADD MAXLEN ~): the replay window of /changes. Events
    # with text can be large; lower it for many busy accounts on a small Redis.
    events_maxlen: int = 10000
    # Force Celery task events (-E, ~1 ms per task); Flower switches them on by itself anyway.
    worker_task_events: bool = False
    # Security (docs/security.md). Secrets in Redis are encrypted with this key (hex/base64 of
    # 32 bytes or a passphrase), else the key file's first key, else <stateDir>/secret.key.
    encryption_key: str | None = None
    key_file: str | None = None
    # auto: open on a loopback host while no token exists, tokens required otherwise; on; off.
    api_auth: str = "auto"
    # A token the API adds (hash only, scope *) at start when missing: a fresh deployment beyond
    # loopback starts without a manual `tokens create` (the chart's Secret holds it).
    api_bootstrap_token: str | None = field(default=None, repr=False)
    # Largest request body; None: smtp.maxSize as base64 plus 1 MiB for the JSON around it.
    api_max_body: int | None = None
    # Webhooks and the auth server may target private/loopback addresses (link-local and
    # metadata addresses are refused whatever this says).
    outbound_allow_private: bool = True
    # Prometheus endpoints of the sidecar and the worker (None: off) and their bind address.
    sidecar_metrics_port: int | None = None
    worker_metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.api_auth not in ("auto", "on", "off"):
            raise ConfigError(f"api.auth: must be auto, on or off, got {self.api_auth!r}")
        if self.api_bootstrap_token is not None and not (
                32 <= len(self.api_bootstrap_token) <= 256):
            # never echo the value: it is a credential
            raise ConfigError("api.bootstrapToken: must be 32..256 characters (e.g. "
                              "`openssl rand -hex 32`)")

    @property
    def max_body(self) -> int:
        if self.api_max_body is not None:
            return self.api_max_body
        return (self.submit_max_size + 2) // 3 * 4 + 1024 * 1024

    @property
    def redis_url_or_default(self) -> str:
        if not self.redis_url:
            raise ConfigError("no Redis URL configured and no embedded server started")
        return self.redis_url


# option name -> (settings attribute, env var, kind)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "dbs.redis": ("redis_url", "REDIS_URL", "redis"),
    "api.host": ("api_host", "API_HOST", "str"),
    "api.port": ("api_port", "API_PORT", "port"),
    "api.workers": ("api_workers", "API_WORKERS", "posint"),
    "log.level": ("log_level", "LOG_LEVEL", "level"),
    "service.commandTimeout": ("command_timeout", "COMMAND_TIMEOUT", "duration"),
    "service.stateDir": ("state_dir", "STATE_DIR", "str"),
    "service.secret": ("webhook_secret", "WEBHOOK_SECRET", "str"),
    "worker.concurrency": ("worker_concurrency", "WORKER_CONCURRENCY", "posint"),
    "worker.queues": ("worker_queues", "WORKER_QUEUES", "str"),
    "sidecar.id": ("sidecar_id", "SIDECAR_ID", "str"),
    "sidecar.pool": ("sidecar_pool", "SIDECAR_POOL", "posint"),
    "sidecar.leaseTtl": ("sidecar_lease_ttl", "SIDECAR_LEASE_TTL", "duration"),
    "sidecar.drainBudget": ("sidecar_drain_budget", "SIDECAR_DRAIN_BUDGET", "duration"),
    "sidecar.connectRamp": ("sidecar_connect_ramp", "SIDECAR_CONNECT_RAMP", "posint"),
    "sidecar.connectRate": ("sidecar_connect_rate", "SIDECAR_CONNECT_RATE", "posint"),
    "imap.loginRate": ("imap_login_rate", "IMAP_LOGIN_RATE", "posint"),
    "sidecar.statusSweep": ("status_sweep", "STATUS_SWEEP", "duration"),
    "sidecar.emailId": ("email_id", "SIDECAR_EMAIL_ID", "bool"),
    "smtp.maxSize": ("submit_max_size", "SUBMIT_MAX_SIZE", "size"),
    "smtp.timeout": ("smtp_timeout", "SMTP_TIMEOUT", "duration"),
    "webhooks.timeout": ("webhook_timeout", "WEBHOOK_TIMEOUT", "duration"),
    "webhooks.retryWindow": ("webhook_retry_window", "WEBHOOK_RETRY_WINDOW", "duration"),
    "events.maxLength": ("events_maxlen", "EVENTS_MAXLEN", "posint"),
    "worker.taskEvents": ("worker_task_events", "WORKER_TASK_EVENTS", "bool"),
    "service.encryptionKey": ("encryption_key", "ENCRYPTION_KEY", "str"),
    "service.keyFile": ("key_file", "KEY_FILE", "str"),
    "api.auth": ("api_auth", "API_AUTH", "str"),
    "api.bootstrapToken": ("api_bootstrap_token", "API_BOOTSTRAP_TOKEN", "str"),
    "api.maxBody": ("api_max_body", "API_MAX_BODY", "size"),
    "outbound.allowPrivate": ("outbound_allow_private", "OUTBOUND_ALLOW_PRIVATE", "bool"),
    "sidecar.metricsPort": ("sidecar_metrics_port", "SIDECAR_METRICS_PORT", "port"),
    "worker.metricsPort": ("worker_metrics_port", "WORKER_METRICS_PORT", "port"),
    "metrics.host": ("metrics_host", "METRICS_HOST", "str"),
}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _convert(option: str, kind: str, value):
    if kind == "str":
        return str(value)
    if kind == "redis":
        url = str(value)
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss", "unix", "redis+socket") or not (
            parsed.hostname or parsed.path
        ):
            raise ConfigError(f"{option}: not a Redis URL: {url!r} (expected redis://host:port/db)")
        try:
            _ = parsed.port   # raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(f"{option}: bad port in Redis URL {url!r}") from exc
        if parsed.scheme in ("redis", "rediss") and not re.fullmatch(r"/?(\d+)?", parsed.path or ""):
            raise ConfigError(f"{option}: bad database number in Redis URL {url!r} (expected e.g. redis://host:6379/0)")
        return url
    if kind in ("port", "posint"):
        try:
            number = int(str(value))
        except ValueError as exc:
            raise ConfigError(f"{option}: not a number: {value!r}") from exc
        if kind == "port" and not 1 <= number <= 65535:
            raise ConfigError(f"{option}: port out of range 1..65535: {number}")
        if kind == "posint" and number < 1:
            raise ConfigError(f"{option}: must be at least 1: {number}")
        return number
    if kind == "level":
        level = str(value).lower()
        if level not in LEVELS:
            raise ConfigError(f"{option}: unknown log level {value!r}")
        return level
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() not in _BOOLS:
            raise ConfigError(f"{option}: not a yes/no value: {value!r} (use 1 or 0)")
        return _BOOLS[str(value).lower()]
    if kind == "duration":
        return parse_duration(value, name=option)
    if kind == "size":
        return parse_size(value, name=option)
    raise AssertionError(kind)


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_cli(argv: list[str]) -> tuple[dict, str | None, list[str]]:
    """Split `--a.b=value` options, `--config=PATH` and the remaining arguments."""
    options, config, rest = {}, None, []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            if name == "config":
                config = value
            elif name in OPTIONS:
                options[name] = value
            else:
                raise ConfigError(f"unknown option --{name}")
        else:
            rest.append(arg)
    return options, config, rest


def load_settings(argv: list[str] | None = None, env: dict | None = None) -> Settings:
    """Build Settings from the layers; raises ConfigError naming the bad option."""
    env = dict(os.environ if env is None else env)
    if env.get("IMAPAPI_DOTENV", "1") != "0":
        dotenv = Path.cwd() / ".env"
        if dotenv.is_file():
            from dotenv import dotenv_values   # lazy: only when a .env file is there

            for key, value in dotenv_values(dotenv).items():
                env.setdefault(key, value or "")
    cli, config_path, _ = parse_cli(list(argv or []))
    config_path = env.get("IMAPAPI_CONFIG") or config_path
    layers: dict[str, object] = {}
    if config_path:
        try:
            with open(config_path, "rb") as fh:
                filed = _flatten(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_path}: {exc}") from exc
        unknown = sorted(set(filed) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"config file {config_path}: unknown option {unknown[0]}")
        layers.update(filed)
    layers.update(cli)
    for option, (_, env_name, _) in OPTIONS.items():
        if env.get(env_name, "") != "":
            layers[option] = env[env_name]
    values = {}
    for option, value in layers.items():
        attr, _, kind = OPTIONS[option]
        values[attr] = _convert(option, kind, value)
    return Settings(**values)


_current: Settings | None = None


def configure(settings: Settings) -> Settings:
    """Install the process-wide settings (the CLI does this once, before anything else runs)."""
    global _current
    _current = settings
    get_redis.cache_clear()
    return settings


def get_settings() -> Settings:
    """The process-wide settings, loaded from env/.env on first use when not configured."""
    global _current
    if _current is None:
        _current = load_settings([])
    return _current


def replace(**changes) -> Settings:
    """Return the current settings with some values changed, and install them."""
    return configure(dataclasses.replace(get_settings(), **changes))


@lru_cache(maxsize=1)
def get_redis():
    """One Redis client (connection pool) per process, built from the settings."""
    import redis   # lazy: `--help` and a config check need no Redis client

    settings = get_settings()
    # the socket timeout must outlast the longest blocking read (BLPOP for a reply)
    return redis.Redis.from_url(
        settings.redis_url_or_default, socket_timeout=max(30.0, settings.command_timeout + 10),
        socket_connect_timeout=5, health_check_interval=30,
    )


def redacted(url: str) -> str:
    """A Redis URL safe to log (password hidden)."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@", 1)
    return url


def die(message: str, code: int = 2):
    """Print one clear line and exit: used for configuration errors."""
    print(f"imap-api: {message}", file=sys.stderr)
    raise SystemExit(code)

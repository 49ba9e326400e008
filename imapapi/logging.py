"""Process logging: one line per record on stderr, level from settings (pino names accepted)."""
from __future__ import annotations

import logging
import os
import sys

# The one map of level names (pino's as well as Python's); settings validates against its keys.
LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR,
          "fatal": logging.CRITICAL, "critical": logging.CRITICAL}
FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def level_of(name: str) -> int:
    return LEVELS.get(str(name).lower(), logging.INFO)


def gunicorn_level(name: str) -> str:
    """The same level in Gunicorn's words (debug, info, warning, error, critical)."""
    return logging.getLevelName(level_of(name)).lower()


def setup(level: str = "info", component: str | None = None) -> logging.Logger:
    """Configure the root logger once per process; returns the `imapapi[.component]` logger."""
    root = logging.getLogger()
    if not any(getattr(h, "_imapapi", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._imapapi = True
        root.addHandler(handler)
    root.setLevel(level_of(level))
    # third-party chatter stays at warning unless we debug
    for noisy in ("urllib3", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(level_of(level), logging.WARNING))
    os.environ.setdefault("LOG_LEVEL", str(level))
    return logging.getLogger(f"imapapi.{component}" if component else "imapapi")

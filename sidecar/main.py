"""Sidecar entry point: `run(settings)` (used by `imap-api sidecar` and `python -m sidecar`)."""
from __future__ import annotations

import logging
import signal
import threading

from imapapi import settings as settings_mod
from imapapi.logging import level_of

from . import metrics
from .imap import fetchparse
from .supervisor import Supervisor

def setup_logging(level: str) -> None:
    logging.basicConfig(level=level_of(level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # imapclient logs every protocol line at DEBUG; keep it out unless asked for (trace).
    logging.getLogger("imapclient").setLevel(logging.DEBUG if level == "trace" else logging.WARNING)


def run(settings=None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    settings = settings or settings_mod.get_settings()
    settings_mod.configure(settings)
    if not logging.getLogger().handlers:
        setup_logging(settings.log_level)
    # FETCH replies are parsed with our faster lexer (same result as imapclient's own parser).
    fetchparse.install()
    sup = Supervisor(settings, settings_mod.get_redis())
    metrics.serve(settings, sup)   # sidecar.metricsPort (off when unset)
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            logging.getLogger(__name__).info("signal %s: shutting down", signum)
            sup.stop()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    sup.run()
    return 0

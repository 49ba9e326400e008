"""Worker heartbeat file: a consumer bootstep touches it, `imap-api-probe worker` checks its age."""
from __future__ import annotations

import logging
import os
import time

from celery import bootsteps
from celery.signals import celeryd_init

from imapapi.probe import WORKER_BEAT_EVERY, worker_beat_file

log = logging.getLogger(__name__)


def touch() -> None:
    path = worker_beat_file()
    try:
        # utime on an existing file is one syscall; create it on the first beat
        try:
            os.utime(path)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{os.getpid()} {time.time():.0f}\n")
    except OSError as exc:   # a read-only or full disk must not take the worker down
        log.warning("worker heartbeat %s: %s", path, exc)


class Heartbeat(bootsteps.StartStopStep):
    """Runs on the consumer's timer, so the file goes stale when the consumer loop stops turning
    (lost broker connection being re-established, a wedged event loop), without the broker round
    trip `celery inspect ping` costs on every probe."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.tref = None

    def start(self, consumer):
        touch()
        self.tref = consumer.timer.call_repeatedly(WORKER_BEAT_EVERY, touch)

    def stop(self, consumer):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop


@celeryd_init.connect
def _register(sender=None, instance=None, **_):
    """Add the step when a worker starts (before it builds its consumer), on the app it runs;
    importing this module is all the worker needs (celery_tasks/app.py does)."""
    if instance is not None and Heartbeat not in instance.app.steps["consumer"]:
        instance.app.steps["consumer"].add(Heartbeat)

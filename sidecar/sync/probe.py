"""A short-lived second session's LIST: does the main session's folder list miss a renamed folder?"""
from __future__ import annotations

import logging
import time

from sidecar.connection import ConnectFailure, close_quietly, connect, is_connection_error

from . import imapio

log = logging.getLogger(__name__)

# Dovecot (2.3, list index + NOTIFY) can leave a session's folder list without a folder another
# client renamed while the session was between EXAMINE and IDLE: its LIST names neither the old
# nor the new name for 20 s and more, no NOTIFY push comes, and no command on that session (NOOP,
# CHECK, NOTIFY again, STATUS/LIST/EXAMINE of the new name, a second later) brings it back. A
# new session lists it. So when a pass finds folders gone and none new, a second session lists
# too; when it names folders ours missed, the main session is replaced (quietly).
RECYCLE_EVERY = 60.0   # at most one such replacement a minute per account: never a login loop
QUIET_LOGIN = 60.0     # the replacement's login is no news: no authenticationSuccess within this


class FolderListBehind(ConnectionError):
    """Another session lists folders this one misses: only a new session shows them."""


def should_probe(deleted, created, baselined: bool) -> bool:
    """Pure: is this pass's folder diff the shape a missed rename has (gone, none new)?"""
    return bool(baselined and deleted and not created)


def decide(main: set, other: set | None, since_recycle: float) -> tuple[str, set]:
    """Pure: the main session's listed paths, the probe's (None: it failed), seconds since this
    account's last replacement -> ("recycle" | "commit", the paths the main session missed)."""
    if other is None:
        return "commit", set()
    missed = set(other) - set(main)
    if missed and since_recycle >= RECYCLE_EVERY:
        return "recycle", missed
    return "commit", missed


def quiet_login(session) -> bool:
    """Is this login the replacement check() asked for (no authenticationSuccess)? Once."""
    quiet = time.time() < getattr(session, "quiet_login_until", 0.0)
    session.quiet_login_until = 0.0
    return quiet


def list_elsewhere(session) -> set | None:
    """LIST on a new session with the account's credentials -> its selectable paths, or None
    (login refused by pacing, failed, timed out). No event and no account state: it is not the
    account's connection."""
    record = getattr(session, "record", None) or {}
    imap = record.get("imap")
    gate = getattr(session, "logins", None)
    if not imap:
        return None
    if gate is not None and not gate.take((imap or {}).get("host")):
        log.info("%s: folder probe skipped (login pacing)", session.account)
        return None
    client = None
    try:
        client, _caps = connect(imap, session.settings.command_timeout, account=session.account,
                                redis=session.redis)
        return set(imapio.list_folders(client, set()))   # names only: a plain LIST
    except ConnectFailure as exc:
        log.info("%s: folder probe login failed: %s", session.account, exc)
    except Exception as exc:
        if not is_connection_error(exc):
            log.warning("%s: folder probe failed: %s", session.account, exc)
    finally:
        close_quietly(client)
    return None


def check(session, main: set) -> None:
    """After a pass found folders gone and none new: probe; raise FolderListBehind when the
    main session missed folders (and may be replaced now), else return (commit as usual)."""
    t0 = time.time()
    other = list_elsewhere(session)
    verdict, missed = decide(main, other, t0 - getattr(session, "probe_recycle_at", 0.0))
    if verdict == "recycle":
        session.probe_recycle_at = t0
        session.quiet_login_until = time.time() + QUIET_LOGIN
        log.warning("%s: another session lists %s, ours does not: new session (probe %.0f ms)",
                    session.account, sorted(missed), (time.time() - t0) * 1000)
        raise FolderListBehind(f"folder list behind: {sorted(missed)} listed elsewhere")
    if missed:
        log.warning("%s: another session lists %s, ours does not (replaced lately: left to the "
                    "next login)", session.account, sorted(missed))

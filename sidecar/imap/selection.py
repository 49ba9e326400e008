"""Which folder a connection has selected, so an op can skip re-EXAMINing it (one round trip)."""
# A single-message read used to EXAMINE its folder every time, even when the connection already
# had it selected (INBOX, the idle folder, nearly always): a full round trip (and a mailbox
# re-open on the server) per request. While a folder stays selected its UIDVALIDITY cannot
# change (a server that must change it closes the mailbox or the connection first), and UID
# FETCH does not depend on the client's view being current, so reads may reuse the selection.
# Every call that changes the selection goes through the wrapped methods below; the folder
# methods that could make the remembered name stale (rename, delete) forget it.
from __future__ import annotations

import functools

_ATTR = "_imapapi_selected"     # (folder, readonly, SELECT response) or None
_FORGET = ("unselect_folder", "close_folder", "rename_folder", "delete_folder", "logout")


def track(client) -> None:
    """Wrap this client's select/unselect methods so `current()` knows the selected folder."""
    if getattr(client, _ATTR + "_tracked", False):
        return
    setattr(client, _ATTR, None)
    setattr(client, _ATTR + "_tracked", True)
    select = client.select_folder

    @functools.wraps(select)
    def select_folder(folder, readonly=False):
        setattr(client, _ATTR, None)     # a failed SELECT leaves no folder selected (RFC 3501)
        info = select(folder, readonly=readonly)
        setattr(client, _ATTR, (folder, bool(readonly), info))
        return info

    client.select_folder = select_folder
    for name in _FORGET:
        method = getattr(client, name, None)
        if method is not None:
            setattr(client, name, _forgetting(client, method))


def _forgetting(client, method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        setattr(client, _ATTR, None)
        return method(*args, **kwargs)
    return call


def current(client, folder: str, *, readonly: bool = True) -> dict | None:
    """The SELECT response if `folder` is selected in a mode good enough, else None.

    A read-write selection serves reads too (BODY.PEEK does not set \\Seen); a write needs a
    read-write one. Untracked clients always answer None (the caller selects)."""
    got = getattr(client, _ATTR, None)
    if not got or got[0] != folder or (got[1] and not readonly):
        return None
    return got[2]


def forget(client) -> None:
    """After something the wrappers do not see (a raw command that may change the selection)."""
    if getattr(client, _ATTR + "_tracked", False):
        setattr(client, _ATTR, None)

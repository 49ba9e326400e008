"""Shared helpers of the message ops: resolve ids to a selected folder, check flags."""
from __future__ import annotations

import re

from imapclient.exceptions import IMAPClientError

from imapapi import errors, ids
from sidecar.imap import selection
from sidecar.imap.codec import encode_mailbox, normalize_path, to_text
from sidecar.imap.fetch import fetch_one

# RFC 3501 flag: "\" atom (system flag) or a keyword atom; atom-specials are excluded.
_FLAG = re.compile(r'^\\?[^\x00-\x20\x7f(){%*"\\\]]+$')


def valid_flag(flag) -> bool:
    return isinstance(flag, str) and len(flag) <= 128 and bool(_FLAG.match(flag))


def check_flags(flags, field: str = "flags") -> list[str]:
    """Reject anything that is not an IMAP flag atom (it would break or inject into the command)."""
    flags = list(flags or [])
    for flag in flags:
        if not valid_flag(flag):
            raise errors.BadRequest(f"Invalid flag {flag!r}", code="InvalidFlag",
                                    fields=[{"key": field, "message": f"Invalid flag {flag!r}"}])
    return flags


def server_path(path) -> str:
    """A path as the API user gives it (Unicode, `inbox`) -> as the server lists it."""
    if not isinstance(path, str) or not path:
        raise errors.BadRequest("path is required", code="InvalidInput",
                                fields=[{"key": "path", "message": "path is required"}])
    return normalize_path(encode_mailbox(path))


def select(client, path: str, *, readonly: bool = True) -> dict:
    """SELECT/EXAMINE a folder; a folder the server does not know is MailboxNotFound (404)."""
    folder = server_path(path)
    try:
        return client.select_folder(folder, readonly=readonly)
    except IMAPClientError as exc:
        if not folder_exists(client, folder):
            raise errors.MailboxNotFound(path=path) from None
        raise exc


def folder_exists(client, path: str) -> bool:
    """LIST with the exact name (wildcards in a user's path would match other folders)."""
    if "*" in path or "%" in path:
        return any(to_text(name) == path for _f, _d, name in client.list_folders())
    try:
        return bool(client.list_folders("", server_path(path)))
    except IMAPClientError:
        return False


def open_message(ctx, client, message_id: str, *, readonly: bool = True) -> tuple[int, int, str]:
    """Message/text/attachment id -> (mailbox number, uid, path) with the folder selected.

    404 when the number is unknown, the folder is gone, or its UIDVALIDITY changed since the id
    was issued (an old uid could now name another message)."""
    return _open(ctx, client, message_id, readonly, reuse=False)[:3]


def open_for_read(ctx, client, message_id: str) -> tuple[int, int, str, bool]:
    """open_message for a read that may reuse the connection's selected folder (no EXAMINE)
    -> (mailbox number, uid, path, reused); a miss on a reused folder should select again
    (selection.forget + open_message) before it is a 404, as open_and_fetch does."""
    return _open(ctx, client, message_id, True, reuse=True)


def open_and_fetch(ctx, client, message_id: str, items) -> tuple[int, int, str, dict]:
    """For single-message reads: open_message + one UID FETCH -> (number, uid, path, entry).
    `items`: a list, or a callable giving it once the folder is selected (objectid.items).

    When the connection already has the folder selected (the idle folder, nearly always) no
    EXAMINE is sent (sidecar/imap/selection.py): the read costs one round trip. The session's
    view may then predate the message (appended by another client since): a miss selects
    again and fetches once more before it is a 404."""
    mailbox_no, uid, path, reused = _open(ctx, client, message_id, True, reuse=True)
    if callable(items):
        items = items()
    try:
        return mailbox_no, uid, path, fetch_one(client, uid, items)
    except errors.MessageNotFound:
        if not reused:
            raise
    selection.forget(client)
    mailbox_no, uid, path, _ = _open(ctx, client, message_id, True, reuse=False)
    return mailbox_no, uid, path, fetch_one(client, uid, items)


def _open(ctx, client, message_id: str, readonly: bool, reuse: bool):
    mailbox_no, uid = ids.decode_message_id(message_id)
    uid_validity, path = ctx.registry.resolve(mailbox_no)
    info = selection.current(client, server_path(path), readonly=readonly) if reuse else None
    reused = info is not None
    if info is None:
        try:
            info = select(client, path, readonly=readonly)
        except errors.MailboxNotFound:
            raise errors.MessageNotFound() from None
    current = info.get(b"UIDVALIDITY")
    if current is not None and int(current) != int(uid_validity):
        raise errors.MessageNotFound()
    return mailbox_no, uid, path, reused

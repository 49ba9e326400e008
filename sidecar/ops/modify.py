"""Ops messages.update (flags, move) and messages.delete (to Trash, or expunge of that UID only)."""
from __future__ import annotations

import re

from imapapi import errors, ids
from sidecar.imap import compat
from sidecar.imap.codec import to_text
from sidecar.imap.fetch import fetch_one

from .registry import op
from .msgutil import check_flags, folder_exists, open_message, server_path

TRASH_NAMES = ("trash", "deleted items", "deleted messages", "deleted", "bin", "[gmail]/trash",
               "inbox.trash", "inbox/trash")
# "[COPYUID v src dst] ..." in response text, or "v src dst" as imaplib files the untagged code
_COPYUID = re.compile(rb"(?:COPYUID\s+|^)(\d+)\s+([\d:,]+)\s+([\d:,]+)", re.I)


def _copyuid(data) -> tuple[int, int] | None:
    """'[COPYUID <uidvalidity> <src> <dst>]' -> (uidvalidity, new uid) for a single moved uid."""
    for item in data or ():
        match = _COPYUID.search(item if isinstance(item, bytes) else str(item).encode())
        if match and match.group(3).isdigit():
            return int(match.group(1)), int(match.group(3))
    return None


def _expunge_uid(client, uid: int) -> bool:
    """Flag this UID \\Deleted and remove exactly it -> whether it was expunged.

    Without UIDPLUS there is no UID EXPUNGE, and a plain EXPUNGE also removes every message
    another client flagged \\Deleted (some keep such messages as an undoable soft delete). A
    SEARCH for other \\Deleted messages first would still race with those clients, so the
    message is only left flagged (the caller reports `expunged: false`); the next EXPUNGE by
    any client removes it."""
    # capability first: the flag is set either way, the removal only where it is exact
    exact = client.has_capability("UIDPLUS")
    client.add_flags([uid], [b"\\Deleted"], silent=True)
    if exact:
        client.uid_expunge([uid])
    return exact


def move_uid(ctx, client, uid: int, target: str) -> dict:
    """Move one UID from the selected folder; -> {path, id?, uid?, expunged?} (id/uid when
    COPYUID is sent; `expunged: false` when, without MOVE and UIDPLUS, the original is only
    flagged \\Deleted)."""
    untagged = compat.untagged(client)    # imaplib keeps untagged response codes (COPYUID) here
    untagged.pop("COPYUID", None)
    out: dict = {"path": target}
    if client.has_capability("MOVE"):
        client.move([uid], target)
        copied = _copyuid(untagged.pop("COPYUID", None))
    else:
        # imapclient drops the tagged response text of UID COPY, which carries COPYUID
        typ, data = compat.simple_command(client, "UID", "COPY", str(uid),
                                          compat.normalise_folder(client, target))
        if typ != "OK":
            raise errors.UpstreamError(to_text(data[0] if data else b"COPY failed"))
        copied = _copyuid(data) or _copyuid(untagged.pop("COPYUID", None))
        if not _expunge_uid(client, uid):
            out["expunged"] = False   # the copy is in `target`, the original flagged \\Deleted
    if copied:
        uid_validity, new_uid = copied
        out["id"] = ids.encode_message_id(ctx.registry.number(uid_validity, target), new_uid)
        out["uid"] = new_uid
    return out


@op("messages.update")
def update(ctx, message: str, flags: dict | None = None, path: str | None = None):
    flags = flags or {}
    changes = {key: check_flags(flags[key], f"flags.{key}") for key in ("set", "add", "delete")
               if flags.get(key) is not None}
    with ctx.client() as client:
        _no, uid, current = open_message(ctx, client, message, readonly=False)
        fetch_one(client, uid, ["UID", "FLAGS"])   # 404 before changing anything
        result: dict = {}
        done: dict = {}
        if "set" in changes:
            # `set` replaces the whole flag list, so add/delete next to it would be ambiguous
            client.set_flags([uid], changes["set"], silent=True)
            done["set"] = True
        else:
            if changes.get("add"):
                client.add_flags([uid], changes["add"], silent=True)
                done["add"] = True
            if changes.get("delete"):
                client.remove_flags([uid], changes["delete"], silent=True)
                done["delete"] = True
        if done:
            result["flags"] = done
        if path is not None:
            target = server_path(path)
            if target != current:
                if not folder_exists(client, target):
                    raise errors.MailboxNotFound(path=path)
                result.update(move_uid(ctx, client, uid, target))
            else:
                result["path"] = target
    return result


def find_trash(client) -> str | None:
    """The \\Trash special-use folder, else one with a common Trash name."""
    # without folder decoding imapclient gives names as bytes: paths are str everywhere else
    folders = [(flags, to_text(name)) for flags, _d, name in client.list_folders()]
    for flags, name in folders:
        if b"\\Trash" in flags or "\\Trash" in flags:
            return name
    by_name = {name.lower(): name for _f, name in folders}
    for candidate in TRASH_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    return None


@op("messages.delete")
def delete(ctx, message: str, force: bool = False):
    with ctx.client() as client:
        _no, uid, current = open_message(ctx, client, message, readonly=False)
        fetch_one(client, uid, ["UID"])
        trash = None if force else find_trash(client)
        if trash is None or trash == current:
            if _expunge_uid(client, uid):
                return {"deleted": True}
            return {"deleted": True, "expunged": False}   # flagged \\Deleted only (no UIDPLUS)
        # find_trash LISTed on this connection; the selected folder is unchanged
        moved = move_uid(ctx, client, uid, trash)
        out = {"destination": trash}
        if "id" in moved:
            out["messageId"] = moved["id"]
        if moved.get("expunged") is False:
            return {"moved": out, "expunged": False}
        return {"moved": out}


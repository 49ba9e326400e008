"""Ops mailboxes.create / rename / delete (paths given as segments or as a full path)."""
from __future__ import annotations

from imapclient.exceptions import IMAPClientError

from imapapi import errors
from sidecar.imap.codec import encode_mailbox, normalize_path, to_text

from .registry import op
from .msgutil import folder_exists, server_path


def _bad_path(message: str, key: str = "path") -> errors.BadRequest:
    return errors.BadRequest(message, code="InvalidInput", fields=[{"key": key, "message": message}])


def _namespace(client) -> tuple[str, str]:
    """-> (personal prefix, delimiter) of the server's personal namespace."""
    delimiter = "/"
    prefix = ""
    try:
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
            if personal:
                prefix, delim = personal[0]
                prefix = to_text(prefix)
                delimiter = to_text(delim) if delim else delimiter
                return prefix, delimiter
        folders = client.list_folders("", "")
        if folders and folders[0][1]:
            delimiter = to_text(folders[0][1])
    except IMAPClientError:
        pass
    return prefix, delimiter


def join_path(client, path) -> str:
    """['Parent', 'Child'] -> server path with the namespace prefix and delimiter; a string is
    taken as a full path (the delimiter is the user's business then)."""
    if isinstance(path, str):
        if not path:
            raise _bad_path("path is required")
        return server_path(path)
    if not isinstance(path, list) or not path or not all(isinstance(p, str) and p for p in path):
        raise _bad_path("path must be a non-empty array of folder names")
    prefix, delimiter = _namespace(client)
    if any(delimiter in segment for segment in path):
        raise _bad_path(f"A folder name can not contain the delimiter {delimiter!r}")
    joined = delimiter.join(encode_mailbox(segment) for segment in path)
    if prefix and not joined.upper().startswith("INBOX") and not joined.startswith(prefix):
        joined = prefix + joined
    return normalize_path(joined)


@op("mailboxes.create")
def create(ctx, path=None, **_):
    with ctx.client() as client:
        folder = join_path(client, path)
        try:
            client.create_folder(folder)
        except IMAPClientError as exc:
            if "ALREADYEXISTS" in str(exc).upper() or folder_exists(client, folder):
                return {"path": folder, "created": False}
            raise
        try:
            client.subscribe_folder(folder)
        except IMAPClientError:
            pass   # the folder exists; not being subscribed is not worth failing the call
    return {"path": folder, "created": True}


@op("mailboxes.rename")
def rename(ctx, path=None, newPath=None, **_):
    with ctx.client() as client:
        source = server_path(path)
        target = join_path(client, newPath) if isinstance(newPath, list) else server_path(newPath)
        if source == "INBOX":
            raise _bad_path("INBOX can not be renamed")
        if not folder_exists(client, source):
            raise errors.MailboxNotFound(path=path)
        if folder_exists(client, target):
            raise errors.Conflict("Target folder already exists", code="AlreadyExists", path=target)
        client.rename_folder(source, target)
        try:
            client.unsubscribe_folder(source)
            client.subscribe_folder(target)
        except IMAPClientError:
            pass
    return {"path": source, "newPath": target, "renamed": True}


@op("mailboxes.delete")
def delete(ctx, path=None, **_):
    with ctx.client() as client:
        folder = server_path(path)
        if folder == "INBOX":
            raise _bad_path("INBOX can not be deleted")
        if not folder_exists(client, folder):
            raise errors.MailboxNotFound(path=path)
        # a selected folder can not be deleted on some servers: leave it first
        try:
            client.unselect_folder()
        except Exception:
            pass
        client.delete_folder(folder)
        try:
            client.unsubscribe_folder(folder)
        except IMAPClientError:
            pass
    return {"path": folder, "deleted": True}

"""Op "messages.list": one sequence-range FETCH of a page, newest first."""
from __future__ import annotations

from imapapi import errors

from ..connection import is_connection_error
from ..imap import codec, listing, objectid
from .registry import op


def select_or_404(client, path: str, given: str):
    """SELECT (read-only) or MailboxNotFound naming the path as the user gave it."""
    try:
        return client.select_folder(path, readonly=True)
    except Exception as exc:
        if is_connection_error(exc) or isinstance(exc, errors.ApiError):
            raise
        raise errors.MailboxNotFound(path=given) from exc


def resolve_path(path) -> str:
    if not isinstance(path, str) or not path:
        raise errors.BadRequest("path is required", fields=[{"key": "path", "message": "required"}])
    return codec.normalize_path(codec.encode_mailbox(path))


@op("messages.list")
def list_messages(ctx, path=None, page: int = 0, pageSize: int = 20, **_):
    folder = resolve_path(path)
    page_size = max(1, min(1000, int(pageSize or 20)))
    with ctx.client() as client:
        info = select_or_404(client, folder, path)
        total = int(info.get(b"EXISTS", 0))
        window = listing.page_window(total, int(page or 0), page_size)
        result = {"total": total, "page": window["page"], "pages": window["pages"],
                  "pageSize": page_size, "messages": []}
        if not total:
            return result
        mailbox_no = ctx.registry.number(int(info[b"UIDVALIDITY"]), folder)
        # Paging is by sequence number: imapclient must send FETCH, not UID FETCH.
        saved, client.use_uid = client.use_uid, False
        try:
            # A list, not "a:b": imapclient filters the reply by the ids it was given.
            rows = client.fetch(list(range(window["first"], window["last"] + 1)),
                                listing.FETCH_ITEMS + objectid.items(client))
        finally:
            client.use_uid = saved
    for seq in sorted(rows, reverse=True):
        if b"UID" in rows[seq]:
            result["messages"].append(listing.build_entry(mailbox_no, rows[seq]))
    return result

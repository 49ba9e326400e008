"""messageNew payloads: the extended message entry, with headers/text as the settings ask."""
from __future__ import annotations

import logging

from imapclient.exceptions import ProtocolError

from imapapi.ids import encode_message_id
from sidecar.imap import bodystructure, objectid
from sidecar.imap.details import DETAIL_ITEMS, build_details, collect_text

log = logging.getLogger(__name__)

FETCH_CHUNK = 50


def _filter_headers(entry: dict, wanted) -> None:
    headers = entry.pop("headers", None)
    if not wanted or headers is None:
        return
    if wanted == "*" or (isinstance(wanted, list) and "*" in wanted):
        entry["headers"] = headers
        return
    names = {str(n).lower() for n in wanted} if isinstance(wanted, list) else set()
    picked = {k: v for k, v in headers.items() if k in names}
    if picked:
        entry["headers"] = picked


def _fetch(client, uids: list[int], base: list, ids: list) -> dict:
    """FETCH the details. Dovecot answers X-GUID with nothing for a message whose file another
    session removed (RFC822.SIZE 0; seen under folder renames), which imapclient cannot parse:
    the whole folder's sync then failed on every pass, its new messages waited minutes. Such a
    chunk is fetched a message at a time, and the unreadable one without the id items (its
    messageNew has no emailId; a later expunge is reported as usual)."""
    try:
        return client.fetch(uids, base + ids)
    except ProtocolError:
        if len(uids) > 1:
            rows: dict = {}
            for uid in uids:
                rows.update(_fetch(client, [uid], base, ids))
            return rows
        if not ids:
            raise
        log.info("details of uid %s unreadable with %s: fetched without them", uids[0], ids)
        return client.fetch(uids, base)


def new_message_entries(client, mailbox_no: int, uids: list[int], settings: dict) -> dict:
    """-> {uid: entry}; uids expunged before we could fetch them are simply absent."""
    base, ids = list(DETAIL_ITEMS), list(objectid.items(client))
    out = {}
    for start in range(0, len(uids), FETCH_CHUNK):
        part = uids[start:start + FETCH_CHUNK]
        rows = _fetch(client, part, base, ids)
        for uid in part:
            row = rows.get(uid)
            if not row:
                continue
            row = dict(row)
            row.setdefault(b"UID", uid)   # imapclient keys UID FETCH answers by uid and drops it
            try:
                entry = build_details(mailbox_no, row)
            except Exception:   # one odd message must not block the folder's other events
                log.exception("messageNew entry for uid %s failed", uid)
                entry = {"id": encode_message_id(mailbox_no, uid), "uid": uid}
            if isinstance(entry.get("flags"), list):
                entry["flags"] = [f for f in entry["flags"] if f != "\\Recent"]   # session-local
            _filter_headers(entry, settings.get("notifyHeaders"))
            text = entry.get("text") if isinstance(entry.get("text"), dict) else None
            if text is not None:
                text.pop("visible", None)   # never in webhooks (as the original)
            if settings.get("notifyText") and text is not None and b"BODYSTRUCTURE" in row:
                size = settings.get("notifyTextSize") or 0
                try:
                    structure = bodystructure.analyze(row[b"BODYSTRUCTURE"])
                    got = collect_text(client, uid, structure, structure.groups, "*",
                                               int(size))
                    text.update({k: v for k, v in got.items() if k in ("plain", "html", "hasMore")})
                except Exception:
                    log.exception("messageNew text for uid %s failed", uid)
            out[uid] = entry
    return out

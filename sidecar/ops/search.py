"""Op messages.search: API criteria -> IMAP UID SEARCH, paged by UID (newest first)."""
from __future__ import annotations

import math
import re
from datetime import date, datetime

from imapapi import errors
from sidecar.imap.codec import normalize_path

from .registry import op
from ..imap import listing, objectid
from .msgutil import select

_SET = re.compile(r"^(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*$")
# boolean key -> (criterion when true, criterion when false)
FLAG_KEYS = {
    "answered": ("ANSWERED", "UNANSWERED"), "deleted": ("DELETED", "UNDELETED"),
    "draft": ("DRAFT", "UNDRAFT"), "flagged": ("FLAGGED", "UNFLAGGED"),
    "seen": ("SEEN", "UNSEEN"), "unseen": ("UNSEEN", "SEEN"),
}
TEXT_KEYS = {"from": "FROM", "to": "TO", "cc": "CC", "bcc": "BCC", "body": "BODY",
             "subject": "SUBJECT", "text": "TEXT"}
DATE_KEYS = {"before": "BEFORE", "since": "SINCE", "sentBefore": "SENTBEFORE",
             "sentSince": "SENTSINCE"}


def _bad(key: str, message: str) -> errors.BadRequest:
    return errors.BadRequest(message, code="InvalidInput", fields=[{"key": f"search.{key}", "message": message}])


def _date(key: str, value) -> date:
    if isinstance(value, (date, datetime)):
        return value if not isinstance(value, datetime) else value.date()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise _bad(key, "Must be an ISO 8601 date") from None


def build_criteria(search: dict, capabilities=()) -> list:
    """The API's search object -> an imapclient criteria list (ALL when empty). Pure."""
    criteria: list = []
    for key, value in (search or {}).items():
        if value is None:
            continue
        if key in FLAG_KEYS:
            criteria.append(FLAG_KEYS[key][0 if value else 1])
        elif key in TEXT_KEYS:
            criteria += [TEXT_KEYS[key], str(value)]
        elif key in DATE_KEYS:
            criteria += [DATE_KEYS[key], _date(key, value)]
        elif key in ("larger", "smaller"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _bad(key, "Must be a non-negative integer")
            criteria += [key.upper(), value]
        elif key in ("uid", "seq"):
            text = str(value).replace(" ", "")
            if not _SET.match(text):
                raise _bad(key, "Must be a message set like 1:10,15")
            criteria += (["UID", text] if key == "uid" else [text])
        elif key == "modseq":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _bad(key, "Must be a non-negative integer")
            if "CONDSTORE" not in capabilities:
                # MODSEQ is a CONDSTORE search key; dropping it would silently match everything
                raise errors.BadRequest(
                    "The server does not support CONDSTORE", code="NotSupported",
                    fields=[{"key": "search.modseq", "message": "Needs CONDSTORE on the server"}])
            criteria += ["MODSEQ", value]
        elif key in ("emailId", "threadId"):
            if "OBJECTID" not in capabilities:
                # the original drops the key and so matches every message (a delete by emailId
                # would hit the whole folder); our X-GUID-based emailId is not searchable either
                raise errors.BadRequest(
                    "The server does not support OBJECTID", code="NotSupported",
                    fields=[{"key": f"search.{key}", "message": "Needs OBJECTID on the server"}])
            criteria += [key[:-2].upper() + "ID", str(value)]
        elif key == "header":
            if not isinstance(value, dict):
                raise _bad(key, "Must be an object {name: value}")
            for name, hvalue in value.items():
                criteria += ["HEADER", str(name), "" if hvalue is True else str(hvalue)]
        else:
            raise _bad(key, f"Unknown search key {key!r}")
    return criteria or ["ALL"]


def page_bounds(total: int, page: int, page_size: int) -> tuple[int, int]:
    """-> (clamped page, pages); asking past the end gives the last page."""
    pages = max(1, math.ceil(total / page_size))
    return min(max(page, 0), pages - 1), pages


@op("messages.search")
def search(ctx, path: str, search: dict | None = None, page: int = 0, pageSize: int = 20):
    if not isinstance(pageSize, int) or not 1 <= pageSize <= 1000:
        raise errors.BadRequest("pageSize must be 1..1000", code="InvalidInput",
                                fields=[{"key": "pageSize", "message": "Must be 1..1000"}])
    with ctx.client() as client:
        caps = {c.decode().upper() if isinstance(c, bytes) else str(c).upper()
                for c in client.capabilities()}
        criteria = build_criteria(search or {}, caps)
        info = select(client, path, readonly=True)
        charset = None if all(str(c).isascii() for c in criteria) else "UTF-8"
        uids = sorted(client.search(criteria, charset=charset), reverse=True)
        page, pages = page_bounds(len(uids), page, pageSize)
        chosen = uids[page * pageSize:(page + 1) * pageSize]
        messages = []
        if chosen:
            mailbox_no = ctx.registry.number(int(info[b"UIDVALIDITY"]), normalize_path(path))
            data = client.fetch(chosen, listing.FETCH_ITEMS + objectid.items(client))
            for uid, entry in data.items():
                entry.setdefault(b"UID", uid)   # imapclient keys UID FETCH replies by uid
            messages = [listing.build_entry(mailbox_no, data[uid]) for uid in chosen if uid in data]
    return {"total": len(uids), "page": page, "pages": pages, "messages": messages}

"""Stable message identity (`emailId`, `threadId`): RFC 8474 OBJECTID, else Dovecot's X-GUID.

Chosen once per connection (remembered on the client object), right before its first FETCH
that wants it, so the folder is selected: OBJECTID in the capabilities -> FETCH EMAILID THREADID
(the server's ids verbatim, so `search.emailId` matches them); else one probe
`UID FETCH 4294967295 (X-GUID)` (no message has that uid: the answer costs nothing) -> OK means
the server knows X-GUID (Dovecot: the message GUID, kept by COPY and MOVE within the user) and
`emailId` is a 64-bit hash of it, 16 hex digits (a uniform shape whatever the mail storage: for
maildir the GUID is the file name, which also names the server host); BAD -> no ids on this
connection. `sidecar.emailId = false` turns all of it off.
"""
from __future__ import annotations

import hashlib
import imaplib
import re

from imapapi.settings import get_settings

from . import compat

OBJECTID_ITEMS: tuple[bytes, ...] = (b"EMAILID", b"THREADID")
XGUID_ITEMS: tuple[bytes, ...] = (b"X-GUID",)
PROBE_UID = 4294967295   # the largest uid: never a real message, so the probe returns no data
_ATTR = "_imapapi_objectid"
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def items(client, enabled: bool | None = None) -> tuple[bytes, ...]:
    """The FETCH items that give this connection's message ids (empty: none). The connection
    must have a folder selected the first time (the X-GUID probe is a FETCH)."""
    known = getattr(client, _ATTR, None)
    if known is None:
        known = detect(client, get_settings().email_id if enabled is None else enabled)
        if known is None:
            return ()   # no folder selected yet: decide at a later FETCH
        setattr(client, _ATTR, known)
    return known


def detect(client, enabled: bool) -> tuple[bytes, ...] | None:
    """-> the id items, or None when only a probe can tell and no folder is selected."""
    if not enabled:
        return ()
    caps = {c.decode().upper() if isinstance(c, bytes) else str(c).upper()
            for c in client.capabilities()}
    if "OBJECTID" in caps:
        return OBJECTID_ITEMS
    if not compat.is_selected(client):
        return None
    # UID FETCH even inside a sequence-number listing (a FETCH of message 4294967295 is BAD)
    saved, client.use_uid = client.use_uid, True
    try:
        client.fetch([PROBE_UID], list(XGUID_ITEMS))
    except imaplib.IMAP4.abort:
        raise   # the connection broke: decide on the next one
    except imaplib.IMAP4.error:
        return ()   # BAD: the server does not know X-GUID
    finally:
        client.use_uid = saved
    return XGUID_ITEMS


def _text(value) -> str | None:
    """An id as FETCH parses it: bytes, an int (all digits) or a 1-tuple (EMAILID (M1a2b))."""
    if isinstance(value, (tuple, list)):
        value = value[0] if len(value) == 1 else None
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return text or None


def guid_email_id(guid) -> str | None:
    """X-GUID -> emailId: 64-bit BLAKE2b of the GUID as 16 hex digits."""
    text = _text(guid)
    if text is None:
        return None
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def entry_ids(row: dict) -> dict:
    """A FETCH row (imapclient dict) -> {"emailId"?, "threadId"?}; only the ids it carries."""
    out = {}
    if b"EMAILID" in row:
        email_id = _text(row[b"EMAILID"])
        if email_id:
            out["emailId"] = email_id
        thread_id = _text(row.get(b"THREADID"))   # NIL: the server does not thread
        if thread_id:
            out["threadId"] = thread_id
    elif b"X-GUID" in row:
        email_id = guid_email_id(row[b"X-GUID"])
        if email_id:
            out["emailId"] = email_id
    return out


# -- compact storage in the folder sync state (messageDeleted needs the id after the expunge) --
def pack(uids: list[int], ids: dict) -> object:
    """uid -> emailId for the sorted `uids` -> what the state blob stores: None when no id is
    known; 8 bytes per uid (zeros: unknown) when every id is 16 hex digits (X-GUID), half
    of what the hex strings would take; else a list of str/None aligned with `uids` (OBJECTID)."""
    values = [ids.get(uid) for uid in uids]
    if not any(values):
        return None
    if all(v is None or _HEX16.match(v) for v in values):
        zero = bytes(8)
        return b"".join(zero if v is None else bytes.fromhex(v) for v in values)
    return values


def unpack(uids: list[int], packed) -> dict:
    """The inverse of pack (uids sorted as they were packed)."""
    if not packed:
        return {}
    if isinstance(packed, (bytes, bytearray)):
        zero = bytes(8)
        out = {}
        for n, uid in enumerate(uids):
            raw = packed[n * 8:n * 8 + 8]
            if len(raw) == 8 and raw != zero:
                out[uid] = raw.hex()
        return out
    return {uid: v for uid, v in zip(uids, packed) if v}

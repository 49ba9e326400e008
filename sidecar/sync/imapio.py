"""Raw IMAP calls imapclient lacks: UID FETCH 1:* with CHANGEDSINCE/VANISHED, NOTIFY, LIST-STATUS."""
from __future__ import annotations

import imaplib
import re

from imapclient import imap_utf7
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_fetch_response, parse_response

from sidecar.imap import compat, objectid, responses
from sidecar.imap.codec import as_str

from .diff import ServerStatus, norm_flags

STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ")


def status_items(caps: set[str]) -> list[str]:
    """What STATUS asks for: HIGHESTMODSEQ only where the server has CONDSTORE."""
    return [i for i in STATUS_ITEMS if i != "HIGHESTMODSEQ" or "CONDSTORE" in caps]


def folder_name(raw) -> str:
    """A mailbox name as the server sends it -> our path: the raw modified UTF-7 string, as
    every op uses (clients run with folder_encode = False); only INBOX is case-normalized."""
    name = as_str(raw)
    return "INBOX" if name.upper() == "INBOX" else name


def select(client, path: str) -> ServerStatus:
    info = client.select_folder(path, readonly=True)
    return ServerStatus(uid_validity=int(info.get(b"UIDVALIDITY", 0)),
                        uid_next=int(info.get(b"UIDNEXT", 0) or 0),
                        messages=int(info.get(b"EXISTS", 0)),
                        highest_modseq=int(info.get(b"HIGHESTMODSEQ", 0) or 0))


def parse_uid_set(raw: str) -> list[int]:
    """'1:3,7' -> [1, 2, 3, 7] (VANISHED and ESEARCH answers)."""
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


def parse_vanished(lines) -> list[int]:
    """untagged 'VANISHED (EARLIER) 1:3,5' payloads -> uids."""
    out = []
    for line in lines or ():
        line = as_str(line).strip()
        if line.upper().startswith("(EARLIER)"):
            line = line[len("(EARLIER)"):]
        out.extend(parse_uid_set(line))
    return out


def fetch_flags(client, *, changed_since: int = 0, vanished: bool = False, id_items=()):
    """UID FETCH 1:* (UID FLAGS [MODSEQ] [id_items]) -> ({uid: (flags, modseq)}, vanished uids,
    {uid: {"emailId"?, "threadId"?}} from id_items (objectid.items)).

    Raw because imapclient drops answers for ids it was not given as a list."""
    items = "(UID FLAGS" + "".join(" " + i.decode() for i in id_items) + ")"
    mods = None
    if changed_since:
        mods = f"(CHANGEDSINCE {changed_since}{' VANISHED' if vanished else ''})"
    untagged = compat.untagged(client)
    untagged.pop("VANISHED", None)
    args = ["UID", "FETCH", "1:*", items] + ([mods] if mods else [])
    typ, data = compat.command(client, "FETCH", *args)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"UID FETCH failed: {data}")
    gone = parse_vanished(untagged.pop("VANISHED", None))
    try:
        parsed = parse_fetch_response([d for d in data if d is not None], False, True) if data else {}
    except ProtocolError:
        if not id_items:
            raise
        # Dovecot answers X-GUID with nothing for a message whose file another session removed
        # (see details._fetch): the flags without the ids rather than a sync failing every pass
        out, more, _ids = fetch_flags(client, changed_since=changed_since, vanished=vanished)
        return out, sorted(set(gone) | set(more)), {}
    out, ids = {}, {}
    for uid, item in parsed.items():
        modseq = item.get(b"MODSEQ") or (0,)
        out[int(uid)] = (norm_flags(item.get(b"FLAGS")), int(modseq[0]))
        if id_items:
            found = objectid.entry_ids(item)
            if found:
                ids[int(uid)] = found
    return out, gone, ids


def uid_search_all(client) -> list[int]:
    return sorted(int(u) for u in client.search(["ALL"]))


def push_path(raw, known=()) -> str:
    """A mailbox name from a NOTIFY push -> our path (modified UTF-7, as LIST gives it).

    Dovecot 2.3 pushes names decoded (UTF-8, as a literal when non-ASCII; `A&B` for `A&-B`)
    even without UTF8=ACCEPT, while other servers send modified UTF-7: non-ASCII bytes can
    only be the decoded form; an ASCII name is whichever form names a folder we know."""
    name = folder_name(raw)
    if name == "INBOX" or name in known:
        return name
    encoded = imap_utf7.encode(name).decode("ascii")
    if not name.isascii() or encoded in known:
        return encoded
    return name


# `personal` rather than a list of names: it covers folders created later without a new NOTIFY,
# and MailboxName pushes creations/deletions/renames as untagged LIST (deletion: \NonExistent).
NOTIFY_SET = ("SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
              " (personal (MessageNew MessageExpunge FlagChange MailboxName))")


def notify_set(client) -> None:
    """NOTIFY for the selected folder and every personal folder, including folder changes."""
    typ, data = compat.simple_command(client, "NOTIFY", NOTIFY_SET)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"NOTIFY failed: {data}")


def status_dict(items) -> dict:
    out = {}
    items = list(items or ())
    for i in range(0, len(items) - 1, 2):
        out[as_str(items[i]).upper()] = int(items[i + 1])
    return out


# The plain forms of LIST and STATUS lines, parsed without imapclient's lexer (which is most of
# an idle account's sweep CPU): flags, a one-character or NIL delimiter, a quoted or atom name;
# anything else (literals, extended data, numeric or NIL atoms) takes the lexer.
_QUOTED = rb'"((?:[^"\\]|\\["\\])*)"'
_ATOM = rb'([^\s"(){}%*\\\]]+)'
_LIST_LINE = re.compile(rb'\(([^()"{}]*)\) (?:"([^"\\])"|NIL) (?:' + _QUOTED + rb'|' + _ATOM + rb')')
_STATUS_LINE = re.compile(rb'(?:' + _QUOTED + rb'|' + _ATOM + rb') \(([A-Za-z0-9 ]*)\)')
_UNESCAPE = re.compile(rb'\\(["\\])')


def _plain_name(quoted, atom):
    """The name from a fast match, or None when the lexer must decide (numeric or NIL atoms)."""
    if quoted is not None:
        return _UNESCAPE.sub(rb"\1", quoted)
    if atom.isdigit() or atom.upper() == b"NIL":
        return None
    return atom


def fast_list_row(line) -> tuple | None:
    """One plain LIST line -> (flags, delimiter, name) as parse_response gives them, else None."""
    m = _LIST_LINE.fullmatch(line) if isinstance(line, bytes) else None
    if m is None:
        return None
    name = _plain_name(m.group(3), m.group(4))
    if name is None or not name.isascii():
        return None
    return tuple(m.group(1).split()), m.group(2), name


def fast_status(line) -> tuple | None:
    """One plain STATUS line -> (name, {ITEM: int}), else None."""
    m = _STATUS_LINE.fullmatch(line) if isinstance(line, bytes) else None
    if m is None:
        return None
    name, items = _plain_name(m.group(1), m.group(2)), m.group(3).split()
    if name is None or len(items) % 2 or not all(v.isdigit() for v in items[1::2]):
        return None
    return name, {k.decode().upper(): int(v) for k, v in zip(items[::2], items[1::2])}


def parse_status_line(line, known=()) -> tuple[str, dict] | None:
    """b'Work (MESSAGES 3 UIDNEXT 5)' (or imaplib's literal parts of it) -> ("Work", {...})."""
    parts = line if isinstance(line, list) else [line if isinstance(line, bytes) else line.encode()]
    fast = fast_status(parts[0]) if len(parts) == 1 else None
    if fast is not None:
        return push_path(fast[0], known), fast[1]
    try:
        parsed = parse_response(parts)
    except Exception:
        return None
    if len(parsed) < 2:
        return None
    return push_path(parsed[0], known), status_dict(parsed[1])


def list_folders(client, caps: set[str]) -> dict[str, dict]:
    """-> {path: {"flags": [...], "delimiter": str|None, "status": {...} or None}} (selectable only).

    One round trip with LIST-STATUS; else LIST and the caller STATUSes folders itself."""
    untagged = compat.untagged(client)
    want = status_items(caps)
    statuses: dict[str, dict] = {}
    if "LIST-STATUS" in caps:
        untagged.pop("STATUS", None)
        # RETURN replaces the default answer: ask for SPECIAL-USE flags explicitly.
        extra = "SPECIAL-USE " if "SPECIAL-USE" in caps else ""
        typ, lines = compat.command(client, "LIST", "LIST", '""', '"*"', "RETURN",
                                    f"({extra}STATUS ({' '.join(want)}))")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"LIST failed: {lines}")
        rows = list_rows(lines)
        known = {folder_name(name) for _, _, name in rows}
        for parts in responses.regroup(untagged.pop("STATUS", None)):
            got = parse_status_line(parts, known)
            if got:
                statuses[got[0]] = got[1]
    else:
        rows = client.list_folders()
    out = {}
    for flags, delimiter, name in rows:
        flags = [as_str(f) for f in flags]
        if {"\\noselect", "\\nonexistent"} & {f.lower() for f in flags}:
            continue
        path = folder_name(name)
        out[path] = {"flags": flags, "delimiter": as_str(delimiter) if delimiter else None,
                     "status": statuses.get(path) if statuses else None}
    return out


def list_rows(lines) -> list[tuple]:
    """imaplib's LIST entries -> (flags, delimiter, name), one response at a time: a NOTIFY push
    mixed in (decoded non-ASCII name, OLDNAME data) must not shift or break the real rows."""
    rows = []
    for parts in responses.regroup([x for x in lines or () if x is not None]):
        row = fast_list_row(parts[0]) if len(parts) == 1 else None
        if row is not None:
            rows.append(row)   # a plain line names its folder in ASCII: a real LIST answer
            continue
        try:
            row = parse_response(parts)
        except Exception:
            continue
        if len(row) == 3 and isinstance(row[2], (bytes, int)):
            name = str(row[2]).encode() if isinstance(row[2], int) else row[2]
            if name.isascii():   # a real LIST answer names folders in modified UTF-7
                rows.append((row[0], row[1], name))
    return rows


def status(client, path: str, caps: set[str]) -> dict:
    want = status_items(caps)
    got = client.folder_status(path, want)
    return {as_str(k).upper(): int(v) for k, v in got.items()}

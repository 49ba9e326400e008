"""Op "mailboxes.list": LIST + LSUB + STATUS per folder; also stores the listing in Redis."""
from __future__ import annotations

import json

from imapapi import keys

from ..imap import codec, compat
from .registry import op

SPECIAL_USE = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
# Servers without SPECIAL-USE: guess from common (English) names, as the original did.
GUESS = {"sent": "\\Sent", "sent items": "\\Sent", "sent messages": "\\Sent", "drafts": "\\Drafts",
         "trash": "\\Trash", "deleted items": "\\Trash", "deleted messages": "\\Trash",
         "junk": "\\Junk", "spam": "\\Junk", "junk e-mail": "\\Junk", "archive": "\\Archive"}


def special_use(path: str, flags: set[str]) -> str | None:
    if path.upper() == "INBOX":
        return "\\Inbox"
    lowered = {f.lower() for f in flags}
    for name in SPECIAL_USE:
        if name.lower() in lowered:
            return name
    return None


@op("mailboxes.list")
def list_mailboxes(ctx, counters: bool = False, **_):
    with ctx.client() as client:
        folders = client.list_folders()
        try:
            subscribed = {codec.as_str(name) for _, _, name in client.list_sub_folders()}
        except Exception:
            subscribed = set()
        caps = {codec.as_str(c).upper() for c in client.capabilities()}
        if compat.is_selected(client):
            # Dovecot answers STATUS on the selected folder (the main connection's IDLE folder)
            # from this session's view: NOOP brings it up to date with mail that just arrived.
            compat.imaplib_noop(client)
        what = [b"MESSAGES", b"UNSEEN"]
        if counters:
            what += [b"UIDNEXT", b"UIDVALIDITY"]
            if "CONDSTORE" in caps:
                what.append(b"HIGHESTMODSEQ")
        entries = []
        for flags, delimiter, name in folders:
            flags = {codec.as_str(f) for f in flags}
            if {"\\noselect", "\\nonexistent"} & {f.lower() for f in flags}:
                continue
            path = codec.normalize_path(codec.as_str(name))
            delimiter = codec.as_str(delimiter) if delimiter else None
            entry = {
                "path": path,
                "name": codec.leaf_name(path, delimiter),
                "delimiter": delimiter,
                "specialUse": special_use(path, flags),
                "subscribed": path in subscribed or (path == "INBOX" and "inbox" in
                                                     {s.lower() for s in subscribed}),
            }
            if delimiter and delimiter in path:
                entry["parentPath"] = path.rsplit(delimiter, 1)[0]
            status = client.folder_status(path, what)
            entry["messages"] = int(status.get(b"MESSAGES", 0))
            entry["unseen"] = int(status.get(b"UNSEEN", 0))
            if counters:
                for key, field in ((b"UIDNEXT", "uidNext"), (b"UIDVALIDITY", "uidValidity"),
                                   (b"HIGHESTMODSEQ", "highestModseq")):
                    if key in status:
                        entry[field] = int(status[key])
            entries.append(entry)
    _guess_special_use(entries)
    store_listing(ctx.redis, ctx.account, entries)
    return {"mailboxes": entries}


def _guess_special_use(entries: list[dict]) -> None:
    taken = {e["specialUse"] for e in entries if e["specialUse"]}
    for entry in entries:
        guess = GUESS.get(entry["name"].lower()) if not entry["specialUse"] else None
        if guess and guess not in taken and "parentPath" not in entry:
            entry["specialUse"] = guess
            taken.add(guess)


# Replace in one step, and only while the account exists: a listing that finishes after the
# account was deleted must not bring its key back.
_STORE = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


def store_listing(redis, account: str, entries: list[dict]) -> None:
    """Replace keys.mailbox_listing(account): path -> JSON entry (in LIST order)."""
    flat = [x for e in entries for x in (e["path"], json.dumps(e))]
    redis.eval(_STORE, 2, keys.mailbox_listing(account), keys.account(account), *flat)

"""Compact persisted sync state: per folder one Redis hash with a zlib'd uid-delta + flag-mask blob."""
from __future__ import annotations

import json
import zlib
from array import array
from dataclasses import dataclass, field

import msgpack

from imapapi import keys
from sidecar.imap import objectid

MAX_MASK_FLAGS = 32   # flags beyond the first 32 distinct ones of a folder go to `extras`


@dataclass
class FolderState:
    path: str
    uid_validity: int = 0
    uid_next: int = 0
    messages: int = 0
    highest_modseq: int = 0
    version: int = 0                    # bumped on every commit: optimistic concurrency + event ids
    index: dict = field(default_factory=dict)   # uid -> frozenset(flags)
    ids: dict = field(default_factory=dict)     # uid -> emailId (messageDeleted needs it after the expunge)

    def status_fields(self) -> dict:
        return {"path": self.path, "uidValidity": str(self.uid_validity),
                "uidNext": str(self.uid_next), "messages": str(self.messages),
                "highestModseq": str(self.highest_modseq), "version": str(self.version)}


def pack_index(index: dict, ids: dict | None = None) -> bytes:
    """uid -> flags as zlib(msgpack([flag table, uid deltas (uint32), masks (uint32), extras,
    emailIds (objectid.pack; only when any is known)]))."""
    uids = sorted(index)
    table: list[str] = []
    pos: dict[str, int] = {}
    deltas, masks = array("I"), array("I")
    extras = {}
    by_set: dict[frozenset, tuple[int, list]] = {}   # few distinct flag sets: compute each once
    prev = 0
    for uid in uids:
        deltas.append(uid - prev)
        prev = uid
        flags = index[uid]
        known = by_set.get(flags)
        if known is None:
            mask, over = 0, []
            for flag in sorted(flags):
                bit = pos.get(flag)
                if bit is None and len(table) < MAX_MASK_FLAGS:
                    bit = pos[flag] = len(table)
                    table.append(flag)
                if bit is None:
                    over.append(flag)
                else:
                    mask |= 1 << bit
            known = by_set[flags] = (mask, over)
        masks.append(known[0])
        if known[1]:
            extras[str(uid)] = known[1]
    # Little-endian on the wire whatever the host, so a state moves between machines.
    if deltas.itemsize != 4 or array("I", [1]).tobytes()[0] != 1:
        deltas.byteswap(), masks.byteswap()
    parts = [table, deltas.tobytes(), masks.tobytes(), extras]
    packed_ids = objectid.pack(uids, ids or {})
    if packed_ids is not None:
        parts.append(packed_ids)
    raw = msgpack.packb(parts, use_bin_type=True)
    return zlib.compress(raw, 3)   # level 6 costs twice the CPU for ~20 % less


def unpack_index(blob: bytes, ids: dict | None = None) -> dict:
    """-> uid -> flags; the emailIds go into `ids` when given."""
    if not blob:
        return {}
    table, d_raw, m_raw, extras, *more = msgpack.unpackb(zlib.decompress(blob), raw=False)
    deltas, masks = array("I"), array("I")
    deltas.frombytes(d_raw)
    masks.frombytes(m_raw)
    if array("I", [1]).tobytes()[0] != 1:
        deltas.byteswap(), masks.byteswap()
    cache: dict[int, frozenset] = {}   # most messages share a handful of flag combinations
    index = {}
    uid = 0
    for delta, mask in zip(deltas, masks):
        uid += delta
        flags = cache.get(mask)
        if flags is None:
            flags = cache[mask] = frozenset(t for i, t in enumerate(table) if mask >> i & 1)
        index[uid] = flags
    for key, flags in (extras or {}).items():
        index[int(key)] = index.get(int(key), frozenset()) | frozenset(flags)
    if ids is not None and more:
        ids.update(objectid.unpack(sorted(index), more[0]))
    return index


def load(redis, account: str, path: str) -> FolderState | None:
    raw = redis.hgetall(keys.folder_state(account, path))
    if not raw or b"uidValidity" not in raw:
        return None
    get = lambda k: int(raw.get(k, b"0") or 0)   # noqa: E731
    ids: dict = {}
    return FolderState(
        path=path, uid_validity=get(b"uidValidity"), uid_next=get(b"uidNext"),
        messages=get(b"messages"), highest_modseq=get(b"highestModseq"),
        version=get(b"version"), index=unpack_index(raw.get(b"index", b""), ids), ids=ids)


def load_cached(redis, account: str, path: str, cache: dict) -> FolderState | None:
    """load() unless `cache` holds the same version (one HGET instead of the whole blob)."""
    hit = cache.get(path)
    if hit is not None:
        version = redis.hget(keys.folder_state(account, path), "version")
        if version is not None and int(version) == hit.version:
            return hit
    found = load(redis, account, path)
    if found is None:
        cache.pop(path, None)
    else:
        cache[path] = found
    return found


def update_for(account: str, state: FolderState, expected_version: int | None):
    """The (key, fields, expected) triple for imapapi.events.append_events."""
    fields = state.status_fields()
    fields["index"] = pack_index(state.index, state.ids)
    return (keys.folder_state(account, state.path), fields,
            None if expected_version is None else str(expected_version))


def delete_for(account: str, path: str):
    return (keys.folder_state(account, path), None, None)


# -- account-level sync record: known folders and whether the first baseline is done -------------
def account_key(account: str) -> str:
    """HASH under the account prefix, so deleting the account removes it."""
    return keys.account_prefix(account) + "sync"


# Fields: "b" = baselined ("1"/"0") and "/<path>" = JSON [delimiter, specialUse] per folder.
# Short fields and values keep the hash in Redis' compact listpack encoding (values <= 64
# bytes); one JSON blob of every folder was over that and cost ~3x the memory. The old layout
# ("baselined" + "folders" JSON) is still read and is replaced at the next write.
def load_account(redis, account: str) -> tuple[bool, dict]:
    """-> (baselined, {path: {"specialUse", "delimiter"}})."""
    raw = {k.decode(): v for k, v in redis.hgetall(account_key(account)).items()}
    if "folders" in raw:
        return raw.get("baselined") == b"1", json.loads(raw["folders"])
    folders = {}
    for name, value in raw.items():
        if name.startswith("/"):
            delimiter, special = json.loads(value)
            folders[name[1:]] = {"delimiter": delimiter, "specialUse": special}
    return raw.get("b") == b"1", folders


def account_update(account: str, folders: dict, baselined: bool = True,
                   stored: dict | None = None):
    """The state update for imapapi.events.append_events; `stored`: the folders it replaces
    (their fields are removed)."""
    from imapapi.events import DELETE

    fields = {"b": "1" if baselined else "0", "baselined": DELETE, "folders": DELETE}
    fields.update({"/" + p: DELETE for p in stored or () if p not in folders})
    fields.update({"/" + p: json.dumps([m.get("delimiter"), m.get("specialUse")],
                                       separators=(",", ":")) for p, m in folders.items()})
    return (account_key(account), fields, None)


def load_status(redis, account: str, path: str) -> dict | None:
    """Just the counters (no index blob): enough to decide whether a folder moved."""
    raw = redis.hmget(keys.folder_state(account, path), "uidValidity", "uidNext", "messages",
                      "highestModseq")
    if raw[0] is None:
        return None
    return {name: int(v or 0) for name, v in
            zip(("uidValidity", "uidNext", "messages", "highestModseq"), raw)}


def load_statuses(redis, account: str, paths) -> dict[str, dict | None]:
    """load_status for many folders in one round trip (a sweep runs every few seconds)."""
    paths = list(paths)
    pipe = redis.pipeline(transaction=False)
    for path in paths:
        pipe.hmget(keys.folder_state(account, path), "uidValidity", "uidNext", "messages",
                   "highestModseq")
    out = {}
    for path, raw in zip(paths, pipe.execute()):
        out[path] = None if raw[0] is None else {
            name: int(v or 0) for name, v in
            zip(("uidValidity", "uidNext", "messages", "highestModseq"), raw)}
    return out

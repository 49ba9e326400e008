"""The pure part of change detection: stored folder state + what the server says -> changes. No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field

IGNORED_FLAGS = frozenset({"\\Recent"})   # session-local, never a change worth reporting


@dataclass(frozen=True)
class ServerStatus:
    """SELECT/STATUS values of one folder (highest_modseq 0 when the server has no CONDSTORE)."""

    uid_validity: int
    uid_next: int
    messages: int
    highest_modseq: int = 0


@dataclass
class Changes:
    new: list[int] = field(default_factory=list)                  # uids, ascending
    deleted: list[int] = field(default_factory=list)              # uids, ascending
    # (uid, added flags, deleted flags, modseq or 0), by uid
    updated: list[tuple[int, list[str], list[str], int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new or self.deleted or self.updated)


def norm_flags(flags) -> frozenset:
    """Flags as a frozenset of str, without the ones we never report."""
    out = set()
    for f in flags or ():
        f = f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
        if f not in IGNORED_FLAGS:
            out.add(f)
    return frozenset(out)


def flag_delta(old: frozenset, new: frozenset) -> tuple[list[str], list[str]]:
    """-> (added, deleted), each sorted for stable event ids."""
    return sorted(new - old), sorted(old - new)


def plan(stored, server: ServerStatus, *, condstore: bool, flags_hint: bool = False) -> str:
    """Which sync a folder needs.

    stored: the stored state (uid_validity, uid_next, messages, highest_modseq) or None.
    flags_hint: something told us flags changed (untagged FETCH) on a server without CONDSTORE.
    -> "baseline" | "reset" | "none" | "changedsince" | "full"
    """
    if stored is None:
        return "baseline"
    if stored.uid_validity != server.uid_validity:
        return "reset"
    if condstore and server.highest_modseq and stored.highest_modseq:
        if stored.highest_modseq == server.highest_modseq:
            # modseq unchanged but the count moved: only an expunge without modseq bump can do that
            return "none" if stored.messages == server.messages else "full"
        return "changedsince"
    if flags_hint:
        return "full"
    if stored.uid_next == server.uid_next and stored.messages == server.messages:
        return "none"
    return "full"


def diff_full(stored: dict[int, frozenset], server: dict[int, frozenset]) -> Changes:
    """Compare the whole UID -> flags map (no CONDSTORE)."""
    out = Changes()
    out.new = sorted(uid for uid in server if uid not in stored)
    out.deleted = sorted(uid for uid in stored if uid not in server)
    for uid in sorted(server):
        if uid in stored and stored[uid] != server[uid]:
            added, deleted = flag_delta(stored[uid], server[uid])
            out.updated.append((uid, added, deleted, 0))
    return out


def diff_changed(stored: dict[int, frozenset], changed: dict[int, tuple[frozenset, int]],
                 vanished=(), *, all_uids=None) -> Changes:
    """Incremental: CHANGEDSINCE results (uid -> (flags, modseq)), VANISHED uids and, when the
    counts disagreed, the full UID list from UID SEARCH ALL (servers without QRESYNC)."""
    out = Changes()
    gone = set(int(u) for u in vanished)
    if all_uids is not None:
        present = set(all_uids)
        gone |= {uid for uid in stored if uid not in present}
    out.deleted = sorted(uid for uid in gone if uid in stored)
    for uid in sorted(changed):
        if uid in gone:
            continue
        flags, modseq = changed[uid]
        if uid not in stored:
            out.new.append(uid)
        elif stored[uid] != flags:
            added, deleted = flag_delta(stored[uid], flags)
            out.updated.append((uid, added, deleted, modseq))
    if all_uids is not None:
        # new uids the CHANGEDSINCE answer did not carry (should not happen; be safe)
        seen = set(out.new)
        extra = [u for u in all_uids if u not in stored and u not in seen and u not in gone]
        out.new = sorted(seen | set(extra))
    return out


def apply(stored: dict[int, frozenset], changes: Changes,
          flags_of: dict[int, frozenset]) -> dict[int, frozenset]:
    """The index after the changes (flags_of gives flags for new and updated uids)."""
    index = dict(stored)
    for uid in changes.deleted:
        index.pop(uid, None)
    for uid in changes.new:
        index[uid] = flags_of.get(uid, frozenset())
    for uid, _added, _deleted, _ms in changes.updated:
        index[uid] = flags_of[uid]
    return index


def folder_changes(stored_paths: dict[str, dict], live_paths: dict[str, dict]) -> tuple[list, list]:
    """Folder listing diff -> (created paths, deleted paths), each sorted."""
    created = sorted(p for p in live_paths if p not in stored_paths)
    deleted = sorted(p for p in stored_paths if p not in live_paths)
    return created, deleted

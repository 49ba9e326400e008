"""Exact CPU of a process tree (exited children included) through a cgroup, and the machine's busy CPU.

Summing /proc/<pid>/stat over a tree misses what a process costs once it is gone and not yet
reaped by a parent being read, and the kernel's fork/exec/exit work attributed to short-lived
children: for Dovecot (a process per session) that undercounted its connect CPU by about half.
A cgroup's counter keeps everything its members ever ran, children forked later included.

    group = CpuGroup.create("dovecot", dovecot_master_pid)   # None without a writable cpuacct
    before = group.seconds(); ...; group.seconds() - before
    busy0 = machine_busy_seconds(); ...; machine_busy_seconds() - busy0   # all cores, all processes
"""
from __future__ import annotations

import os
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpuacct")
V2 = Path("/sys/fs/cgroup")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idle and I/O wait, since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]   # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def stat_fields(path) -> list[str]:
    """A /proc/<pid>[/task/<tid>]/stat line's fields after the command name ([0] is the state,
    [1] the parent, [11]/[12] user/system ticks, [13]/[14] those of reaped children)."""
    return Path(path).read_text().rsplit(")", 1)[1].split()


def proc_table() -> dict[int, list[str]]:
    """Every live process's stat fields."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = stat_fields(f"/proc/{entry}/stat")
            except OSError:
                continue   # exited since the listing
    return table


def descendants(root: int, table: dict[int, list[str]] | None = None) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for pid, fields in (table if table is not None else proc_table()).items():
        children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


class CpuGroup:
    def __init__(self, path: Path, counter: str, scale: float):
        self.path, self.counter, self.scale = path, counter, scale

    @classmethod
    def create(cls, name: str, root_pid: int) -> "CpuGroup | None":
        """A cgroup holding `root_pid`'s tree (its later children join by themselves); None when
        this machine gives no writable cpuacct (v1) or cpu.stat (v2) hierarchy."""
        if (V1 / "cgroup.procs").exists():
            group = cls(V1 / f"imapapi-bench-{name}", "cpuacct.usage", 1e-9)
        elif (V2 / "cgroup.controllers").exists():
            group = cls(V2 / f"imapapi-bench-{name}", "cpu.stat", 1e-6)
        else:
            return None
        try:
            group.path.mkdir(exist_ok=True)
            for pid in descendants(root_pid):
                try:
                    (group.path / "cgroup.procs").write_text(str(pid))
                except ProcessLookupError:
                    pass   # exited since the listing
            return group
        except OSError:
            return None

    def seconds(self) -> float:
        text = (self.path / self.counter).read_text()
        if self.counter == "cpu.stat":   # "usage_usec N" is its first line
            text = text.split("\n", 1)[0].split()[1]
        return int(text) * self.scale

    def remove(self) -> None:
        """Back to the root group, then drop ours (rmdir needs it empty)."""
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    (self.path.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            self.path.rmdir()
        except OSError:
            pass

"""CPU time of the processes a bench started, per kind of process, between two snapshots.

On a shared 2-core machine latency medians move by several ms from run to run; the CPU each daemon spends
per operation moves far less, and it says where the contention in a latency window comes from (every
process in the window competes for the same two cores). Processes are found by the bench's base directory
in their command line (each daemon's files live there); the bench's own process counts as "bench".
Short-lived helpers (ovs-vsctl) are gone before the second snapshot and are not counted.
"""

from __future__ import annotations

import os
import re

_HZ = os.sysconf("SC_CLK_TCK")
_HOST = re.compile(r"/sim/([^/\s]+)/")


def _cpu(pid: int | str) -> float | None:
    """User + system CPU seconds of `pid` (all its threads), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _HZ


def label(cmdline: str) -> str:
    """What a process is: its program, with the simulated host it serves ("agent hv2", "ovs-vswitchd hv1");
    central OVN databases and etcd have no host."""
    argv = cmdline.split()
    prog = os.path.basename(argv[0]) if argv else "?"
    if prog.startswith("python"):
        prog = "agent" if "tuplenet.agent" in cmdline else "python"
    host = _HOST.search(cmdline)
    return f"{prog} {host.group(1)}" if host else prog


def snapshot(base: str) -> dict[int, tuple[str, float]]:
    """pid -> (label, CPU seconds) of every process whose command line mentions `base`, and of this one."""
    out: dict[int, tuple[str, float]] = {}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pid != me and base not in cmd:
            continue
        cpu = _cpu(pid)
        if cpu is not None:
            out[pid] = ("bench" if pid == me else label(cmd), cpu)
    return out


def per_op(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], ops: int) -> dict[str, float]:
    """Milliseconds of CPU per operation by label, largest first (processes started in between count from 0)."""
    total: dict[str, float] = {}
    for pid, (lab, cpu) in after.items():
        spent = cpu - before.get(pid, (lab, 0.0))[1]
        total[lab] = total.get(lab, 0.0) + spent
    return {k: round(v * 1000 / max(1, ops), 2) for k, v in sorted(total.items(), key=lambda kv: -kv[1]) if v > 0}


def describe(cpu: dict[str, float]) -> str:
    """One line: the total and each kind, in ms per operation."""
    return f"{sum(cpu.values()):.1f} ms in all: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())

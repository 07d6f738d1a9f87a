"""Command, namespace and process helpers for the namespace sandbox (netns.py).

Why a separate module: these are the only places that shell out to `ip`, so error reporting and the
"is this pid still the process we started?" guard against pid reuse live in one spot.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from .procs import pid_alive, wait_for

IFNAMSIZ = 15
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SandboxError(RuntimeError):
    """A sandbox step failed; the message names the command and its stderr."""


def run(cmd: Sequence[str], check: bool = True, timeout: float = 30.0, input: str | None = None,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `cmd` capturing text output; on failure raise SandboxError with the command and its stderr."""
    try:
        cp = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input,
                            env=dict(env) if env is not None else None,
                            stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"timed out after {timeout}s: {shlex.join(cmd)}") from exc
    except FileNotFoundError as exc:
        raise SandboxError(f"command not found: {cmd[0]}") from exc
    if check and cp.returncode != 0:
        detail = (cp.stderr or cp.stdout).strip()
        raise SandboxError(f"exit {cp.returncode}: {shlex.join(cmd)}" + (f"\n{detail}" if detail else ""))
    return cp


def check_name(name: str, what: str = "name") -> str:
    if not _NAME_RE.match(name):
        raise SandboxError(f"bad {what} {name!r}: use letters, digits, '_', '.', '-'")
    return name


def ifname(prefix: str, name: str) -> str:
    """`<prefix>-<name>` if it fits the kernel's 15-byte limit, else `<prefix>-<hash>` (still prefixed)."""
    full = f"{prefix}-{name}"
    if len(full) <= IFNAMSIZ:
        return full
    digest = hashlib.sha1(name.encode()).hexdigest()
    return f"{prefix}-{digest[:max(4, IFNAMSIZ - len(prefix) - 1)]}"


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def netns_inode(name: str) -> int | None:
    """Identity of a named namespace (the nsfs inode behind /run/netns/<name>), to tell ours from a
    namespace someone else created later under the same name."""
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def netns_list() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def gone(pid: int) -> bool:
    """Exited, or a zombie: a zombie whose parent is not us may never be reaped here, yet it is dead."""
    if not pid_alive(pid):
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def terminate(pids: Sequence[int], sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Signal `pids`, wait until they are gone, SIGKILL the ones still there after `timeout`."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    try:
        wait_for(lambda: all(gone(p) for p in pids), timeout=timeout, what=f"pids {list(pids)} to exit")
    except TimeoutError:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: all(gone(p) for p in pids), timeout=timeout, what=f"pids {list(pids)} killed")


def kill_netns_pids(name: str, timeout: float = 5.0) -> None:
    """Stop every process living in namespace `name` (all of them were started by the sandbox)."""
    pids = netns_pids(name)
    if pids:
        terminate(pids, timeout=timeout)


def delete_netns(name: str, timeout: float = 10.0) -> None:
    """Kill what runs inside, then delete the namespace (its links go with it)."""
    if not netns_exists(name):
        return
    kill_netns_pids(name)
    run(["ip", "netns", "del", name], check=False)
    wait_for(lambda: not netns_exists(name), timeout=timeout, what=f"netns {name} removed")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


EXEC_WINDOW_TRIES = 40  # x 5 ms: longer than any execve of ours takes


def owned_alive(pid: int | None, marker: str) -> bool:
    """True if `pid` runs and its command line mentions `marker` (a path of ours), so a reused pid is
    never mistaken for, or killed as, one of our daemons."""
    if pid is None or gone(pid):
        return False
    line = cmdline(pid)
    for _ in range(EXEC_WINDOW_TRIES):  # in the middle of execve the kernel shows an empty command line
        if line or gone(pid):
            break
        time.sleep(0.005)
        line = cmdline(pid)
    return marker in line


def stop_owned(pid: int | None, marker: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    if pid is not None and owned_alive(pid, marker):
        terminate([pid], sig=sig, timeout=timeout)


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None

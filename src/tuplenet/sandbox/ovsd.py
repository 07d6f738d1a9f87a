"""A private ovsdb-server + ovs-vswitchd pair on the dummy datapath, driven by pid and absolute paths.

The base of the simulated hosts in sim.py; kept apart so the host/network logic stays readable.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .procs import pid_alive

SCHEMA = os.environ.get("OVS_SCHEMA", "/usr/share/openvswitch/vswitch.ovsschema")
POLL = 0.0002            # delivery takes about 1 ms (unix streams between daemons): poll finely ...
POLL_FINE_FOR = 0.05      # ... at first, then every POLL_SLOW so a long wait does not burn a CPU
POLL_SLOW = 0.005
_DAEMONS = ("ovsdb-server", "ovs-vswitchd")
T = TypeVar("T")


class SimError(RuntimeError):
    """An OVS command against a sim failed; the message carries the command and its stderr."""


def run_tool(argv: Sequence[str], env: Mapping[str, str], input: str | None = None) -> str:
    proc = subprocess.run(list(argv), env=dict(env), input=input, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise SimError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _sort_key(line: str) -> tuple[int, int, str]:
    table = re.search(r"\btable=(\d+)", line)
    prio = re.search(r"\bpriority=(\d+)", line)
    return (int(table.group(1)) if table else 0, -int(prio.group(1)) if prio else -32768, line)


def poll(cond: Callable[[], T], timeout: float, what: str) -> T:
    """Return cond()'s first truthy value, polling finely at first; TimeoutError naming `what` otherwise."""
    start = time.monotonic()
    while True:
        value = cond()
        if value:
            return value
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(POLL if elapsed < POLL_FINE_FOR else POLL_SLOW)


def process_running(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as gone.

    Detached daemons are re-parented to PID 1, which on our VMs reaps only every couple of seconds, so a
    plain kill(pid, 0) would keep reporting an exited daemon as alive.
    """
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def terminate(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGTERM every pid at once, then wait for each (SIGKILL after `timeout`): parallel shutdown."""
    pids = list(pids)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while process_running(pid):
            if time.monotonic() > deadline:
                _signal(pid, signal.SIGKILL)
            time.sleep(POLL_SLOW / 5)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class OvsSim:
    """One private ovsdb-server + ovs-vswitchd pair living in `self.dir`."""

    def __init__(self, name: str, directory: str, template_db: str) -> None:
        self.name = name
        self.dir = self.rundir = os.path.abspath(directory)
        self.db_file = os.path.join(self.dir, "conf.db")
        self.db_sock = os.path.join(self.dir, "db.sock")
        self.template_db = template_db
        self.pids: dict[str, int] = {}
        self._ctl: Any = None
        self.env = {**os.environ, "OVS_RUNDIR": self.dir, "OVS_DBDIR": self.dir, "OVS_LOGDIR": self.dir,
                    "OVS_SYSCONFDIR": self.dir}

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start whichever daemon is not running; a fresh directory gets a new db and its first config."""
        os.makedirs(self.dir, exist_ok=True)
        fresh = not os.path.exists(self.db_file)
        if fresh:
            shutil.copyfile(self.template_db, self.db_file)
        if not self._alive("ovsdb-server"):
            self._daemon("ovsdb-server", f"--remote=punix:{self.db_sock}", self.db_file)
        if fresh:
            self.vsctl("init", *self._initial_config(), wait=False)
        if not self._alive("ovs-vswitchd"):
            self._daemon("ovs-vswitchd", "--enable-dummy=system", "--disable-system-route",
                         f"unix:{self.db_sock}")
            self._after_vswitchd_start()

    def stop(self, ovsdb: bool = True) -> None:
        """Stop ovs-vswitchd (and ovsdb-server unless `ovsdb=False`) by pid; the db file stays."""
        self.disconnect()
        names = _DAEMONS if ovsdb else ("ovs-vswitchd",)
        terminate([self.pids.pop(n) for n in reversed(names) if n in self.pids])

    def restart(self, ovsdb: bool = True) -> None:
        self.stop(ovsdb)
        self.start()

    def daemon_pids(self) -> list[int]:
        return list(self.pids.values())

    def _alive(self, daemon: str) -> bool:
        pid = self.pids.get(daemon)
        return pid is not None and process_running(pid)

    def _daemon(self, daemon: str, *args: str) -> None:
        base = os.path.join(self.dir, daemon)
        run_tool([daemon, "--detach", "--no-chdir", f"--pidfile={base}.pid", f"--log-file={base}.log",
                  "-vconsole:off", "-vsyslog:off", *args], self.env)
        with open(f"{base}.pid") as f:
            self.pids[daemon] = int(f.read().strip())

    def _initial_config(self) -> list[str]:
        """ovs-vsctl commands (after `init`) written to the db before ovs-vswitchd first starts."""
        return []

    def _after_vswitchd_start(self) -> None:
        """Re-apply the run-time state ovs-vswitchd loses on a restart (addresses, routes, neighbours)."""

    # -- tools -------------------------------------------------------------------------------------

    def vsctl(self, *args: str, wait: bool = True) -> str:
        """ovs-vsctl against this sim's db; by default waits until ovs-vswitchd applied the change."""
        opts = [f"--db=unix:{self.db_sock}", "--timeout=10"] + ([] if wait else ["--no-wait"])
        return run_tool(["ovs-vsctl", *opts, *args], self.env)

    def ofctl(self, *args: str, input: str | None = None) -> str:
        for bridge in (a for a in args[:3] if a.startswith("br-")):  # the bridge's socket can trail add-br
            poll(lambda b=bridge: os.path.exists(os.path.join(self.dir, f"{b}.mgmt")) or None, 10.0,
                 f"{bridge}.mgmt of {self.name}")
        return run_tool(["ovs-ofctl", "--timeout=10", *args], self.env, input=input)

    def appctl(self, *args: str, target: str | None = None) -> str:
        """ovs-appctl; ovs-vswitchd commands go over a persistent unixctl connection (0.4 ms, not 5 ms)."""
        if target is None and (client := self._unixctl()) is not None:
            err, error, result = client.transact(args[0], list(args[1:]))
            if not err:
                if error is not None:
                    raise SimError(f"{self.name}: ovs-appctl {' '.join(args)}: {str(error).strip()}")
                return result
            self.disconnect()
        return run_tool(["ovs-appctl", "--timeout=10", *(["-t", target] if target else []), *args], self.env)

    def _unixctl(self) -> Any:
        if self._ctl is None and "ovs-vswitchd" in self.pids:
            from ovs.unixctl.client import UnixctlClient

            path = os.path.join(self.dir, f"ovs-vswitchd.{self.pids['ovs-vswitchd']}.ctl")
            err, client = UnixctlClient.create(path)
            self._ctl = None if err else client
        return self._ctl

    def disconnect(self) -> None:
        """Close the unixctl connection (before the daemon goes away)."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    def flush_datapath(self) -> None:
        """Drop every cached datapath flow so the next packet is translated against the current tables.

        Right after a flow_mod, revalidation is asynchronous: a packet may still take a stale megaflow, and
        its stats are then credited to the new rule. Call this when a test needs the new flows to apply now.
        """
        self.appctl("revalidator/purge")

    def dump_flows(self, table: int | str | None = None, cookie: int | None = None, bridge: str = "br-int",
                   names: bool = False) -> list[str]:
        """Flows as OpenFlow 1.5 text without statistics, one per line, sorted by table, -priority, text.

        Port names only with `names=True`; `cookie` matches exactly (cookie=C/-1). The text is OVS's own:
        cookie 0 and table 0 are omitted, and flows added over OpenFlow 1.0 (plain `ovs-ofctl add-flow`)
        carry `reset_counts`.
        """
        filt = ([f"table={table}"] if table is not None else []) + ([f"cookie={cookie:#x}/-1"]
                                                                  if cookie is not None else [])
        out = self.ofctl("-O", "OpenFlow15", "--no-stats", "--names" if names else "--no-names",
                         "dump-flows", bridge, *([",".join(filt)] if filt else []))
        lines = [ln.strip() for ln in out.splitlines()]
        return sorted((ln for ln in lines if ln and " reply " not in ln), key=_sort_key)

    def ofport(self, iface: str) -> int:
        """The OpenFlow port number of `iface` (-1 while ovs-vswitchd has not assigned one)."""
        value = self.vsctl("get", "Interface", iface, "ofport", wait=False).strip()
        return int(value) if value not in ("", "[]") else -1

"""A private ovsdb-server + ovs-vswitchd (--enable-dummy=system) for the OpenFlow tests and benchmark.

Everything lives in one temp directory and is stopped by the pids in its pid files, so several instances
can run side by side and nothing touches the host's Open vSwitch. (A candidate for sandbox/ once the
sandbox grows an OVS sim of its own.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

from tuplenet.sandbox.procs import wait_for

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
ALL_PROTOCOLS = "OpenFlow10,OpenFlow11,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15"


def alive(pid: int) -> bool:
    """Running and not a zombie: a --detach daemon is re-parented to PID 1, which may reap it late."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_daemon(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, wait until it is gone (or a zombie), SIGKILL after `timeout`."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
        time.sleep(0.005)


class DummyOvs:
    """One simulated host: its own OVSDB and vswitchd in `rundir` (a fresh temp dir by default)."""

    def __init__(self, rundir: str | None = None) -> None:
        self.rundir = os.path.abspath(rundir or tempfile.mkdtemp(prefix="tn-ovs-"))
        self._own_dir = rundir is None
        self.env = dict(os.environ, OVS_RUNDIR=self.rundir, OVS_DBDIR=self.rundir, OVS_LOGDIR=self.rundir,
                        OVS_SYSCONFDIR=self.rundir, OVS_PKGDATADIR=os.environ.get("OVS_PKGDATADIR",
                                                                                  "/usr/share/openvswitch"))
        self.db_sock = os.path.join(self.rundir, "db.sock")

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> DummyOvs:
        os.makedirs(self.rundir, exist_ok=True)
        db = os.path.join(self.rundir, "conf.db")
        if not os.path.exists(db):
            self._run("ovsdb-tool", "create", db, SCHEMA)
        self._run("ovsdb-server", "--detach", "--no-chdir", "--pidfile", "--log-file", "-vconsole:off",
                  f"--remote=punix:{self.db_sock}", db)
        self.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".", "external-ids:system-id=test")
        self.start_vswitchd()
        return self

    def start_vswitchd(self) -> None:
        self._run("ovs-vswitchd", "--detach", "--no-chdir", "--pidfile", "--log-file", "-vconsole:off",
                  "--enable-dummy=system", f"unix:{self.db_sock}")

    def pid(self, daemon: str) -> int | None:
        try:
            with open(os.path.join(self.rundir, f"{daemon}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop_vswitchd(self) -> None:
        pid = self.pid("ovs-vswitchd")
        if pid is not None:
            stop_daemon(pid)

    def restart_vswitchd(self) -> None:
        """Stop and start ovs-vswitchd (OVSDB keeps the bridges; the flows are lost)."""
        self.stop_vswitchd()
        self.start_vswitchd()

    def stop(self) -> None:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pid = self.pid(daemon)
            if pid is not None:
                stop_daemon(pid)
        if self._own_dir:
            shutil.rmtree(self.rundir, ignore_errors=True)

    def __enter__(self) -> DummyOvs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------- commands
    def _run(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(args, env=self.env, input=input, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def vsctl(self, *args: str) -> str:
        return self._run("ovs-vsctl", f"--db=unix:{self.db_sock}", *args)

    def ofctl(self, *args: str, input: str | None = None) -> str:
        return self._run("ovs-ofctl", *args, input=input)

    def appctl(self, *args: str) -> str:
        return self._run("ovs-appctl", *args)

    def add_bridge(self, name: str, ports: dict[str, int] | None = None, tlv_map: bool = True) -> None:
        """A secure-mode dummy bridge speaking OpenFlow 1.0-1.5, with dummy ports (tx_pcap each)."""
        cmd = ["add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", "fail-mode=secure",
               f"protocols={ALL_PROTOCOLS}", "other-config:disable-in-band=true"]
        for port, ofport in (ports or {}).items():
            cmd += ["--", "add-port", name, port, "--", "set", "Interface", port, "type=dummy",
                    f"ofport_request={ofport}", f"options:tx_pcap={self.pcap(port)}"]
        self.vsctl(*cmd)
        wait_for(lambda: os.path.exists(self.mgmt(name)), timeout=10, what=f"{name}.mgmt")
        if tlv_map:
            self.ofctl("add-tlv-map", name, "{class=0xffee,type=0,len=8}->tun_metadata0")

    def mgmt(self, bridge: str) -> str:
        return os.path.join(self.rundir, f"{bridge}.mgmt")

    def pcap(self, port: str) -> str:
        return os.path.join(self.rundir, f"{port}-tx.pcap")

    def dump_flows(self, bridge: str, version: str = "OpenFlow15") -> list[str]:
        """`dump-flows --no-stats`, sorted, without the reply header."""
        out = self.ofctl("-O", version, "dump-flows", "--no-stats", bridge)
        return sorted(line.strip() for line in out.splitlines() if line.strip() and "reply" not in line)

"""This machine's side of an endpoint: a veth pair, the host end on br-int with `iface-id`, the readiness mark.

Plain `ip`/`ovs-vsctl` calls: one endpoint costs three short processes, and docker moves the container end
into the sandbox itself (the driver must not touch the sandbox, lab-findings W3).
"""

from __future__ import annotations

import socket
import subprocess
from typing import Protocol

READY_KEY = "tuplenet-installed"  # external_ids mark the agent sets once a port's flows are installed


class HostError(Exception):
    """A host-side step failed; the message names the step and the tool's own error."""


def veth_names(eid: str) -> tuple[str, str]:
    """(host end, container end): 15-byte link names derived from the endpoint id."""
    return "tpe" + eid[:12], "tpc" + eid[:12]


def _link_exists(name: str) -> bool:
    """Asks the kernel of our network namespace (sysfs may belong to another one, e.g. under nsenter)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


class Host(Protocol):
    def add_port(self, eid: str, iface_id: str, mac: str, mtu: int) -> None: ...
    def has_port(self, eid: str) -> bool: ...
    def wait_ready(self, eid: str, timeout: float) -> bool: ...
    def delete_port(self, eid: str) -> bool: ...


class LinuxHost:
    """veth pairs in the current network namespace, ports on `bridge` of the OVS at `ovsdb`."""

    def __init__(self, ovsdb: str | None = None, bridge: str = "br-int", tool_timeout: float = 10.0) -> None:
        self.db = ["--db=" + (ovsdb if ":" in ovsdb else "unix:" + ovsdb)] if ovsdb else []
        self.bridge = bridge
        self.tool_timeout = tool_timeout
        self.tx_off = False

    def _run(self, what: str, argv: list[str], timeout: float | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or self.tool_timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostError(f"{what}: {exc}") from None
        if check and r.returncode != 0:
            raise HostError(f"{what}: {' '.join(r.stderr.split()) or f'exit {r.returncode}'}")
        return r

    def vsctl(self, what: str, *args: str, timeout: float | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        t = int(timeout or self.tool_timeout)
        return self._run(what, ["ovs-vsctl", *self.db, f"--timeout={max(t, 1)}", *args], timeout=t + 2,
                         check=check)

    def probe(self) -> str:
        """Check OVS and the bridge; return the chassis name (system-id). Raises HostError with the fix."""
        r = self.vsctl("reading OVS", "--if-exists", "get", "Open_vSwitch", ".", "external_ids:system-id")
        chassis = r.stdout.strip().strip('"')
        if not chassis:
            raise HostError("Open_vSwitch external_ids:system-id is not set (the agent's chassis name); set it "
                            "with `ovs-vsctl set Open_vSwitch . external_ids:system-id=<chassis name>`")
        if self.vsctl("reading OVS", "br-exists", self.bridge, check=False).returncode != 0:
            raise HostError(f"bridge {self.bridge} does not exist in OVS (start the tuplenet agent first)")
        dp = self.vsctl("reading OVS", "get", "Bridge", self.bridge, "datapath_type").stdout.strip().strip('"')
        # The userspace datapath forwards a veth's partially checksummed frames unfixed (OVS 3.1): TCP from
        # the container would die, so the container end computes its checksums itself there.
        self.tx_off = dp == "netdev"
        return chassis

    def add_port(self, eid: str, iface_id: str, mac: str, mtu: int) -> None:
        host, cont = veth_names(eid)
        if _link_exists(host):  # left by an interrupted earlier attempt: start afresh
            self.delete_port(eid)
        self._run("creating veth", ["ip", "link", "add", host, "mtu", str(mtu), "up", "type", "veth", "peer",
                                    "name", cont, "address", mac, "mtu", str(mtu)])
        try:
            if self.tx_off:
                self._run("disabling tx offload", ["ethtool", "-K", cont, "tx", "off"])
            self.vsctl("adding OVS port", "--may-exist", "add-port", self.bridge, host, "--", "set", "Interface",
                       host, f"external_ids:iface-id={iface_id}", f"external_ids:attached-mac={mac}")
        except HostError:
            self.delete_port(eid)
            raise

    def has_port(self, eid: str) -> bool:
        return _link_exists(veth_names(eid)[0])

    def wait_ready(self, eid: str, timeout: float) -> bool:
        """Until the agent marks the port's flows installed (True) or `timeout` seconds pass (False)."""
        host, _ = veth_names(eid)
        r = self.vsctl("waiting for the port", "wait-until", "Interface", host,
                       f'external_ids:{READY_KEY}="true"', timeout=timeout, check=False)
        return r.returncode == 0

    def delete_port(self, eid: str) -> bool:
        """Remove the OVS port and the veth pair; True when something existed."""
        host, _ = veth_names(eid)
        self.vsctl("removing OVS port", "--if-exists", "del-port", self.bridge, host)
        return self._run("removing veth", ["ip", "link", "del", host], check=False).returncode == 0

"""A bare switch (the OpenFlow tests and benchmark use it): one sandbox OvsSim with plain dummy bridges.

The connection needs nothing of a simulated host (uplinks, tunnels, agents): just bridges speaking
every OpenFlow version, the Geneve TLV map, and dummy ports with tx pcaps. Lives in a temp dir that
is removed on stop; daemons are stopped by pid (see sandbox.ovsd).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from .ovsd import SCHEMA, OvsSim, poll, run_tool

ALL_PROTOCOLS = "OpenFlow10,OpenFlow11,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15"
TLV_MAP = "{class=0xffee,type=0,len=8}->tun_metadata0"


class DummyOvs(OvsSim):
    """ovsdb-server + ovs-vswitchd --enable-dummy=system in a fresh temp dir."""

    def __init__(self, directory: str | None = None) -> None:
        base = os.path.abspath(directory or tempfile.mkdtemp(prefix="tn-of-"))
        self._own_dir = directory is None
        template = os.path.join(base, "template.db")
        if not os.path.exists(template):
            run_tool(["ovsdb-tool", "create", template, SCHEMA], os.environ)
        super().__init__("of", os.path.join(base, "sw"), template)
        self.base = base

    def __enter__(self) -> DummyOvs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def destroy(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def restart_vswitchd(self) -> None:
        """Stop and start ovs-vswitchd only: OVSDB keeps the bridges, the flows are lost."""
        self.restart(ovsdb=False)

    def add_bridge(self, name: str, ports: dict[str, int] | None = None, tlv_map: bool = True) -> None:
        """A fail-secure dummy bridge speaking OpenFlow 1.0-1.5, with dummy ports (each with a tx pcap)."""
        cmd = ["add-br", name, "--", "set", "bridge", name, "datapath_type=dummy", "fail-mode=secure",
               f"protocols={ALL_PROTOCOLS}", "other-config:disable-in-band=true"]
        for port, ofport in (ports or {}).items():
            cmd += ["--", "add-port", name, port, "--", "set", "Interface", port, "type=dummy",
                    f"ofport_request={ofport}", f"options:tx_pcap={self.pcap(port)}"]
        self.vsctl(*cmd)
        poll(lambda: os.path.exists(self.mgmt(name)), 10, f"{name}.mgmt")
        if tlv_map:
            self.ofctl("add-tlv-map", name, TLV_MAP)

    def mgmt(self, bridge: str) -> str:
        return os.path.join(self.dir, f"{bridge}.mgmt")

    def pcap(self, port: str) -> str:
        return os.path.join(self.dir, f"{port}-tx.pcap")

    def flows(self, bridge: str) -> list[str]:
        """OpenFlow 1.5 dump without statistics, sorted."""
        return self.dump_flows(bridge=bridge)

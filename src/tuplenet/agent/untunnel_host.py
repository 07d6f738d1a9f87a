"""ENABLE_UNTUNNEL on the host: the pipeline's fact for br-int-dsrgw, bringing that port up, and a read-only
check of the host settings DSR needs.

The agent owns exactly one thing on the host for DSR: the internal port `br-int-dsrgw` (created through
OVSDB, `LocalOvs.set_dsrgw`) and its link state (up). It never writes a sysctl (0.3 set rp_filter and
ip_forward globally, §7.22): the operator sets them (docs/edges.md, "DSR / untunnel"), and the agent
says once per missing setting what is wrong, and keeps the list in `tuplenet status` (`untunnel`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
from typing import Any

from .ovsdb_model import DSRGW_PORT, OvsState
from .pipeline.untunnel import UNTUNNEL_KEY

log = logging.getLogger("tuplenet")

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH22x"  # struct ifreq: name, flags (short), padded to 40 bytes


def dsr_fact(state: OvsState, port: str = DSRGW_PORT) -> dict[tuple, Any]:
    """("untunnel",) = (MAC, ofport) once OVS has given the port both; nothing before."""
    ofport, mac = state.ofports.get(port), state.macs.get(port)
    return {UNTUNNEL_KEY: (mac, ofport)} if ofport and mac else {}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def has_default_route(proc: str = "/proc") -> bool | None:
    """An IPv4 default route in the main table (None: /proc/net/route unreadable)."""
    text = _read(os.path.join(proc, "net", "route"))
    if text is None:
        return None
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000":
            return True
    return False


def host_problems(port: str = DSRGW_PORT, proc: str = "/proc") -> list[str]:
    """What keeps the host's stack from forwarding DSR traffic, one line per missing setting (empty: fine)."""
    conf = os.path.join(proc, "sys", "net", "ipv4", "conf")
    if not os.path.isdir(os.path.join(conf, port)):
        return [f"{port} is not a network interface in the agent's network namespace (userspace tap missing, "
                "or a dummy datapath): DSR traffic goes nowhere"]
    out = []
    if _read(os.path.join(conf, port, "forwarding")) != "1":
        out.append(f"net.ipv4.conf.{port}.forwarding is not 1: the host drops what VMs send through {port} "
                   "(set net.ipv4.ip_forward=1, or that interface's forwarding=1)")
    for scope in ("all", port):
        if _read(os.path.join(conf, scope, "rp_filter")) == "1":
            out.append(f"net.ipv4.conf.{scope}.rp_filter is 1 (strict): VM source addresses are not routed "
                       f"via {port}, so the host drops their packets (set it to 0 or 2)")
    if has_default_route(proc) is False:
        out.append("no IPv4 default route: the host has nowhere to send DSR traffic (add a route towards "
                   "the physical network's router)")
    return out


def bring_up(port: str = DSRGW_PORT) -> str | None:
    """Set the interface up (the one link setting the agent owns); the error text if that failed."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack(_IFREQ, port.encode(), 0)
            flags = struct.unpack(_IFREQ, fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
            if not flags & _IFF_UP:
                fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack(_IFREQ, port.encode(), flags | _IFF_UP))
    except OSError as exc:
        return f"cannot bring {port} up: {exc.strerror or exc}"
    return None


class UntunnelHost:
    """The agent's DSR side on the host: fact, link up, settings check (each problem logged once)."""

    def __init__(self, port: str = DSRGW_PORT, proc: str = "/proc") -> None:
        self.port, self.proc = port, proc
        self._fact: dict[tuple, Any] = {}
        self._logged: set[str] = set()
        self.up_error: str | None = None
        self.problems: list[str] = []

    def facts(self, state: OvsState) -> dict[tuple, Any]:
        """The pipeline fact; when the port (re)appears with an ofport, bring it up and check the host."""
        fact = dsr_fact(state, self.port)
        if fact and fact != self._fact:
            self.up_error = bring_up(self.port)
            self.check()
        self._fact = fact
        return fact

    def check(self) -> list[str]:
        self.problems = ([self.up_error] if self.up_error else []) + host_problems(self.port, self.proc)
        for p in self.problems:
            if p not in self._logged:
                self._logged.add(p)
                log.warning("untunnel (DSR): %s", p)
        return self.problems

    def status(self) -> dict[str, Any]:
        mac, ofport = self._fact.get(UNTUNNEL_KEY, (None, None))
        problems = self.check() if self._fact else [f"{self.port} has no ofport yet"]
        return {"port": self.port, "ofport": ofport, "mac": mac, "ok": not problems, "problems": problems}


__all__ = ["UntunnelHost", "bring_up", "dsr_fact", "has_default_route", "host_problems"]

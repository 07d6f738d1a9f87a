"""The gateway's side of ARP on its outside switches (pipeline/gateway.py has the flows).

- Resolve: a router's frame with an unresolved next hop comes up (OP_ARP_GENERATE); we send an ARP request
  from that router port out of the switch's patch port and remember that we asked (router port, target).
- Learn: an ARP reply from the physical side (OP_ARP_LEARN) is taken only if it answers a request we sent
  (same router port, same target, still pending), is addressed to that port's IP and MAC, and its sender
  is inside the port's subnet. Nothing else on the outside can create or change an entry, and an entry
  belongs to one router port: another router's entries cannot be poisoned through it.
- Age: an entry lives `aging` seconds; at 3/4 of that we ask again and a reply renews it; unanswered, it
  goes (its flow with it) and the next packet resolves afresh.
- Keep: entries are saved to `<rundir>/gateway_arp.json` and read back at start-up (wall-clock ages), so a
  restart neither forgets them nor drops traffic while it re-learns.
- Announce: when an address of a router pinned here (its outside port's VIP, its NAT addresses) becomes
  reachable through one of our patch ports, a gratuitous ARP goes out of that port, so the physical
  network moves to this chassis at once.

Entries become view facts `("neigh", lr, lrp, ip)` → MAC through `step()` on the main loop, which the
engine turns into flows like any other fact. Packet-in handlers only record; they never touch the view.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from . import tables as T
from .flow import Output, ip_int
from .view import View

log = logging.getLogger(__name__)

STATE_FILE = "gateway_arp.json"
PENDING_S = 3.0  # how long a request waits for its reply
RETRY_S = 1.0  # at most one request per (router port, target) per second
BROADCAST = b"\xff" * 6
MAX_ENTRIES = 16384  # learned next hops per gateway: a huge outside subnet cannot grow the agent without bound


def arp_frame(op: int, sha: bytes, spa: str, tha: bytes, tpa: str, dst: bytes = BROADCAST) -> bytes:
    """An Ethernet ARP frame (op 1 request, 2 reply)."""
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + _ip(spa) + tha + _ip(tpa)
    return dst + sha + b"\x08\x06" + body


def _ip(ip: str) -> bytes:
    return ip_int(ip).to_bytes(4, "big")


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_arp(frame: bytes) -> tuple[int, str, str, str, str] | None:
    """(op, sha, spa, tha, tpa) of an Ethernet/IPv4 ARP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[14:20] != b"\x00\x01\x08\x00\x06\x04":
        return None
    op = struct.unpack_from("!H", frame, 20)[0]
    sha, tha = _mac_str(frame[22:28]), _mac_str(frame[32:38])
    spa, tpa = ".".join(map(str, frame[28:32])), ".".join(map(str, frame[38:42]))
    return op, sha, spa, tha, tpa


@dataclass
class Entry:
    mac: str
    learned: float  # time.time() of the last confirming reply
    asked: float = 0.0  # time.time() of the last refresh request


def entries_from(saved: Any, now: float, aging: float) -> dict[tuple[str, str, str], Entry]:
    """The valid, still young entries of a decoded state file (anything else in it is skipped)."""
    out: dict[tuple[str, str, str], Entry] = {}
    for item in saved if isinstance(saved, list) else []:
        try:
            lr, lrp, ip, mac, learned = (item["lr"], item["lrp"], item["ip"], item["mac"], item["learned"])
            if not all(isinstance(x, str) for x in (lr, lrp, ip, mac)) or type(learned) not in (int, float):
                continue
            mac = mac.lower()
            ipaddress.IPv4Address(ip)
            if len(_mac(mac)) != 6 or mac != _mac_str(_mac(mac)):
                continue
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= now - learned < aging:  # NaN compares false: skipped
            out[(lr, lrp, ip)] = Entry(mac, learned)
    return out


@dataclass
class GatewayStats:
    requests: int = 0
    learned: int = 0
    refreshed: int = 0
    expired: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    announced: int = 0


class GatewayArp:
    def __init__(self, view: View, conn: Any, rundir: str, aging: float = 300.0,
                 clock=time.time) -> None:
        self.view, self.conn, self.aging, self.clock = view, conn, aging, clock
        self.path = os.path.join(rundir, STATE_FILE)
        self.entries: dict[tuple[str, str, str], Entry] = {}  # (lr, lrp, ip) -> entry
        self.pending: dict[tuple[str, str, str], float] = {}  # (lr, lrp, ip) -> deadline
        self._asked: dict[tuple[str, str, str], float] = {}  # last request per target (rate limit)
        self._facts: dict[tuple, str | None] = {}  # fact changes for the next step()
        self._announced: set[tuple[int, str, str]] = set()
        self._announced_once = False
        self._next_announce: set[tuple[int, str, str]] = set()
        self._dirty = False
        self.stats = GatewayStats()

    # ---------------------------------------------------------------- start-up / persistence
    def load(self) -> None:
        """Entries saved by a previous run that are still young enough become facts at the next step()."""
        try:
            with open(self.path) as f:
                saved = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return
        for key, e in entries_from(saved, self.clock(), self.aging).items():
            self.entries[key] = e
            self._facts[("neigh", *key)] = e.mac

    def loaded_facts(self) -> dict[tuple, str | None]:
        """The facts load() found (for `tuplenet check`, which computes without running the gateway)."""
        return dict(self._facts)

    def save(self) -> None:
        items = [{"lr": k[0], "lrp": k[1], "ip": k[2], "mac": e.mac, "learned": e.learned}
                 for k, e in sorted(self.entries.items())]
        tmp = self.path + ".tmp"
        try:
            text = json.dumps(items)  # one shot: the C encoder (json.dump streams through the Python one)
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as exc:
            log.warning("cannot save learned ARP entries to %s: %s", self.path, exc)

    # ---------------------------------------------------------------- packet-ins (main loop)
    def on_generate(self, pin: Any) -> None:
        """A router's frame whose next hop (reg2) is unresolved, leaving router port IP reg3 into switch
        `metadata`: ask for the next hop (at most once a second per target)."""
        md = pin.metadata
        found = self._router_port(md.get("metadata", 0), md.get(T.R_OUT_LRP_IP, 0))
        nh = md.get(T.R_NEXT_HOP, 0)
        if found is None or not nh:
            self._reject("not_a_router_port")
            return
        lr, lrp, ofport = found
        target = ".".join(str((nh >> s) & 0xFF) for s in (24, 16, 8, 0))
        if not self._in_subnet(lrp, target):
            self._reject("next_hop_outside_subnet")
            return
        self._request((lr, lrp.name, target), lrp, ofport)

    def on_learn(self, pin: Any) -> None:
        """An ARP reply from the physical side of switch `metadata`."""
        arp = parse_arp(bytes(pin.data))
        if arp is None or arp[0] != 2:
            self._reject("not_an_arp_reply")
            return
        _, sha, spa, tha, tpa = arp
        found = self._router_port(pin.metadata.get("metadata", 0), ip_int(tpa))
        if found is None:
            self._reject("not_for_a_router_port")
            return
        lr, lrp, _ = found
        key = (lr, lrp.name, spa)
        if tha != lrp.mac.lower():
            self._reject("not_for_a_router_port")
            return
        if self.pending.get(key, 0.0) < self.clock():
            self._reject("unsolicited")
            return
        if not self._in_subnet(lrp, spa) or sha in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") or int(sha[:2], 16) & 1:
            self._reject("bad_sender")
            return
        old = self.entries.get(key)
        if old is None and len(self.entries) >= MAX_ENTRIES:
            self._reject("table_full")
            return
        del self.pending[key]
        self.entries[key] = Entry(sha, self.clock())
        self._dirty = True
        if old is None or old.mac != sha:
            self._facts[("neigh", *key)] = sha
            self.stats.learned += 1
            log.info("learned %s at %s for router port %s/%s", spa, sha, lr, lrp.name)
        else:
            self.stats.refreshed += 1

    # ---------------------------------------------------------------- main loop
    def step(self, changed: set[tuple]) -> None:
        """Apply learned/expired entries to the view, age entries, announce new addresses; called once per
        main-loop iteration (at least every second)."""
        now = self.clock()
        for key, e in list(self.entries.items()):
            age = now - e.learned
            if age >= self.aging or age < -60:  # expired, or saved by a clock far ahead
                del self.entries[key]
                self._facts[("neigh", *key)] = None
                self.stats.expired += 1
                self._dirty = True
            elif age >= 0.75 * self.aging and now - e.asked >= max(RETRY_S, self.aging / 8):
                found = self._port_by_name(key[0], key[1])
                if found is not None:
                    e.asked = now
                    self._request(key, *found)
        for key, deadline in list(self.pending.items()):
            if deadline < now:
                del self.pending[key]
        for fkey, mac in self._facts.items():
            self.view.apply(fkey, mac, changed)
        self._facts.clear()
        if self._dirty:
            self.save()
        self._announce(changed)

    def status(self) -> dict[str, Any]:
        st = self.stats
        return {"entries": len(self.entries), "pending": len(self.pending), "requests": st.requests,
                "learned": st.learned, "refreshed": st.refreshed, "expired": st.expired,
                "rejected": dict(st.rejected), "announced": st.announced, "aging_s": self.aging}

    # ---------------------------------------------------------------- helpers
    def _request(self, key: tuple[str, str, str], lrp: Any, ofport: int) -> None:
        now = self.clock()
        if now - self._asked.get(key, -RETRY_S) < RETRY_S:
            return
        self._asked[key] = now
        if len(self._asked) > 4096:
            self._asked = {k: t for k, t in self._asked.items() if now - t < RETRY_S}
        self.pending[key] = now + PENDING_S
        mac = _mac(lrp.mac)
        self.conn.packet_out(arp_frame(1, mac, lrp.ip, b"\0" * 6, key[2]), (Output(ofport),))
        self.stats.requests += 1

    def _reject(self, why: str) -> None:
        self.stats.rejected[why] = self.stats.rejected.get(why, 0) + 1

    @staticmethod
    def _in_subnet(lrp: Any, ip: str) -> bool:
        net = ipaddress.IPv4Network(f"{lrp.ip}/{lrp.prefix}", strict=False)
        return ipaddress.IPv4Address(ip) in net and ip != lrp.ip

    def _patch_ofport(self, ls: str) -> int | None:
        """The ofport of this chassis's patch port in switch `ls`."""
        v = self.view
        self_id = v.get(("self",))
        for k in sorted(v.members(("I", "patch_ports"))):
            lsp = v.get(k)
            if k[1] == ls and lsp is not None and lsp.chassis == self_id:
                ofport = v.get(("patchport", lsp.name))
                if ofport is not None:
                    return ofport
        return None

    def _local_lr(self, lr_name: str) -> Any:
        lr = self.view.get(("LR", lr_name))
        return lr if lr is not None and lr.chassis == self.view.get(("self",)) else None

    def _router_port(self, ls_dp: int, lrp_ip: int) -> tuple[str, Any, int] | None:
        """(router, router port, patch ofport) for the port with IP `lrp_ip` of a router pinned here whose
        peer is in the switch with datapath id `ls_dp` (which must have our patch port)."""
        v = self.view
        for ls_key in v.members(("I", "dp_id", ls_dp)):
            if ls_key[0] != "LS":
                continue
            ofport = self._patch_ofport(ls_key[1])
            if ofport is None:
                return None
            for lsp_key in v.members(("I", "ls_ip", ls_key[1], _ip_str(lrp_ip))):
                lsp = v.get(lsp_key)
                lrp = _peer_lrp(v, lsp)
                if lrp is not None and self._local_lr(lrp.lr) is not None and ip_int(lrp.ip) == lrp_ip:
                    return lrp.lr, lrp, ofport
        return None

    def _port_by_name(self, lr_name: str, lrp_name: str) -> tuple[Any, int] | None:
        lrp = self.view.get(("lrp", lr_name, lrp_name))
        if lrp is None or self._local_lr(lr_name) is None:
            return None
        ls = self._peer_switch(lrp)
        ofport = self._patch_ofport(ls) if ls is not None else None
        return (lrp, ofport) if ofport is not None else None

    def addresses(self) -> set[tuple[int, str, str]]:
        """(patch ofport, IP, MAC) this chassis answers for on its outside switches: the ports of routers
        pinned here in switches with our patch port (their VIPs) and those routers' NAT addresses."""
        from .pipeline.nat import nat_mac

        v = self.view
        self_id = v.get(("self",))
        patch_ls: dict[str, int] = {}
        for pk in v.members(("I", "patch_ports")):
            patch = v.get(pk)
            ofport = v.get(("patchport", pk[2]))
            if patch is not None and patch.chassis == self_id and ofport is not None:
                patch_ls.setdefault(pk[1], ofport)
        out: set[tuple[int, str, str]] = set()
        if not patch_ls:
            return out
        for lr_key in v.members(("I", "lr_pinned", self_id)):
            lrps = [p for p in (v.get(k) for k in v.members(("I", "lr_lrps", lr_key[1]))) if p is not None]
            ports = [(patch_ls[ls], p) for p in lrps if (ls := self._peer_switch(p)) in patch_ls]
            own = {p.ip: p.mac.lower() for p in lrps}
            nats = [n for n in (v.get(k) for k in v.members(("I", "lr_lnats", lr_key[1]))) if n is not None]
            for ofport, p in ports:
                out.add((ofport, p.ip, p.mac.lower()))
                for n in nats:
                    out.add((ofport, n.xlate_ip, own.get(n.xlate_ip) or _mac_str(nat_mac(n.xlate_ip).to_bytes(6, "big"))))
        return out

    def _peer_switch(self, lrp: Any) -> str | None:
        """The switch the router port is linked into (both sides naming each other)."""
        for k in self.view.members(("I", "lsp_name", lrp.peer or "")):
            lsp = self.view.get(k)
            if lsp is not None and lsp.peer == lrp.name:
                return k[1]
        return None

    def _announce(self, changed: set[tuple]) -> None:
        """Gratuitous ARP for addresses that appeared here at the previous step (their flows went in with
        that step's batch), then note the ones appearing now for the next step."""
        for ofport, ip, mac in sorted(self._next_announce):
            self.conn.packet_out(arp_frame(1, _mac(mac), ip, b"\0" * 6, ip), (Output(ofport),))
            self.stats.announced += 1
        self._next_announce = set()
        if not changed and self._announced_once:
            return
        self._announced_once = True
        now_addrs = self.addresses()
        self._next_announce = now_addrs - self._announced
        self._announced = now_addrs


def _ip_str(v: int) -> str:
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))


def _peer_lrp(v: View, lsp: Any) -> Any:
    if lsp is None or not lsp.peer:
        return None
    for k in v.members(("I", "lrp_name", lsp.peer)):
        lrp = v.get(k)
        if lrp is not None and lrp.peer == lsp.name:
            return lrp
    return None

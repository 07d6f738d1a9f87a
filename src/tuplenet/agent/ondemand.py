"""The demand set of an on-demand host (ONDEMAND=1): which remote ports its ports have talked to.

The pipeline (pipeline/ondemand.py) gives a remote port flows only while `("want", ls, lsp)` is in the view,
and a remote chassis a tunnel and a to-chassis flow only while `("wantch", chassis)` is. This module owns
both: a lookup miss reported by the datapath (opcode OP_UNKNOWN_DST, the packet itself is redirected to a
fully programmed chassis meanwhile) adds the ports with the packet's destination; the engine then
recomputes exactly those ports in the same main-loop batch. A port whose lookup flow has carried no packet
for `idle` seconds is forgotten (its flows go) and comes back on the next miss. So what a host computes,
installs and remembers grows with what it talks to, not with the cluster.

Everything here runs on the main loop except `Ager`, a thread that only reads flow counters from OVS and
posts them to the main loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import tables as T
from .flow import COOKIE_TAG, COOKIE_TAG_MASK, COOKIE_TAG_SHIFT, fmt_ip, mac_int
from .ondemand_dormant import Dormant
from .openflow import codec as c
from .pipeline.ondemand import want_key, wantch_key
from .view import PATCH_IP, View

log = logging.getLogger(__name__)

_ETH_IP, _ETH_ARP = b"\x08\x00", b"\x08\x06"


@dataclass
class DemandStats:
    misses: int = 0  # packet-ins for unknown destinations
    learned: int = 0  # ports added to the demand set
    unknown: int = 0  # misses naming no port of the switch (nothing to learn)
    aged: int = 0  # ports forgotten after `idle` seconds without traffic
    gone: int = 0  # wanted ports deleted from etcd
    resumed: int = 0  # paused misses (no helper) resumed after their flows were installed


def miss_target(frame: bytes, regs: dict[str, int]) -> tuple[str | None, int | None]:
    """(IP, MAC) a missed frame was looking for: an ARP request's target IP; an IPv4 frame's destination
    MAC and IP, or, when a router could not resolve its next hop (zero MAC), the next hop (reg2)."""
    if len(frame) < 14:
        return None, None
    ethertype = frame[12:14]
    if ethertype == _ETH_ARP and len(frame) >= 42 and frame[20:22] == b"\x00\x01":
        return fmt_ip(int.from_bytes(frame[38:42], "big")), None
    if ethertype == _ETH_IP and len(frame) >= 34:
        dst_mac = int.from_bytes(frame[0:6], "big")
        if dst_mac == 0:
            nh = regs.get(T.R_NEXT_HOP, 0)
            return (fmt_ip(nh) if nh else fmt_ip(int.from_bytes(frame[30:34], "big"))), None
        return fmt_ip(int.from_bytes(frame[30:34], "big")), dst_mac
    return None, None


class OnDemand:
    """The demand set and its aging, and the gate every etcd change passes (`apply`): remote ports not
    talked to wait in `dormant`, out of the view. `enabled` False (full mode): a plain view.apply."""

    def __init__(self, view: View, enabled: bool, idle: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, self_id: str | None = None) -> None:
        self.view = view
        self.enabled = enabled
        self.self_id = self_id  # known before the first listing is applied (the view's ("self",) is not)
        self.dormant = Dormant()
        self.idle = idle
        self.clock = clock
        self.wants: dict[tuple, float] = {}  # lsp key -> last time its flows were used (or learned)
        self._packets: dict[tuple, int] = {}  # lsp key -> packets its lookup flows had carried
        self._chassis: dict[str, int] = {}  # chassis with wanted ports -> how many
        self._changed: set[tuple] = set()
        self.paused: list[Any] = []  # paused misses (no helper), resumed once their batch is installed
        self.stats = DemandStats()

    # ------------------------------------------------------------------ the gate (main loop)
    def apply(self, key: tuple, obj: Any, changed: set[tuple], created: int = 0) -> None:
        """An etcd change: into the view, or into `dormant` for a remote port nobody here talked to."""
        if self.enabled and key[0] == "lsp":
            if obj is not None and self._can_sleep(key, obj):
                if key in self.view.facts:
                    self.view.apply(key, None, changed)
                self.dormant.put(key, obj, created)
                return
            self.dormant.pop(key)
            if obj is not None and obj.ip != PATCH_IP:
                self._wake_rivals(key, obj, changed)
        self.view.apply(key, obj, changed, created)

    def _can_sleep(self, key: tuple, obj: Any) -> bool:
        """Ordinary, elsewhere, not wanted, no local interface claims its name (binding needs it), and no
        port in the view repeats its IP or MAC (the duplicate rule must see both, duplicates.py)."""
        chassis = obj.chassis
        if not chassis or obj.peer or chassis == (self.self_id or self.view.facts.get(("self",))):
            return False
        if obj.ip == PATCH_IP or key in self.wants:
            return False
        facts = self.view.facts
        if ("bind", obj.name) in facts or ("plugged", obj.name) in facts:
            return False
        # every remote port passes here at start-up: plain index probes, no generator
        index, ls = self.view.index, key[1]
        same = index.get(("I", "ls_ip", ls, obj.ip))
        if same and (len(same) > 1 or key not in same):
            return False
        same = index.get(("I", "ls_mac", ls, mac_int(obj.mac)))
        return not same or (len(same) == 1 and key in same)

    def _wake(self, key: tuple, changed: set[tuple]) -> Any:
        rec = self.dormant.pop(key)
        if rec is None:
            return self.view.facts.get(key)
        self._wake_rivals(key, rec[0], changed)
        self.view.apply(key, rec[0], changed, rec[1])
        return rec[0]

    def _wake_rivals(self, key: tuple, obj: Any, changed: set[tuple]) -> None:
        """A port entering the view brings the dormant ports repeating its IP or MAC in its switch along
        (without flows: they are not wanted), so the older one keeps the address here as in full mode; else
        a port bound here, or a remote one woken by a miss on its MAC, would own a dormant neighbour's address
        on this host."""
        for k in self.dormant.find(key[1], obj.ip, mac_int(obj.mac)) - {key}:
            rec = self.dormant.pop(k)
            if rec is not None:
                self.view.apply(k, rec[0], changed, rec[1])

    def wake_named(self, names: Iterable[str], changed: set[tuple]) -> None:
        """Local interfaces with these iface-ids appeared: their ports must be in the view (binding)."""
        for name in names:
            for k in self.dormant.named(name):
                self._wake(k, changed)

    # ------------------------------------------------------------------ learning (main loop)
    def on_packet_in(self, pin: Any) -> None:
        """OP_UNKNOWN_DST handler (pinctrl registry)."""
        md = pin.metadata
        ip, mac = miss_target(bytes(pin.data), md)
        self.stats.misses += 1
        if getattr(pin, "continuation", None) is not None:
            self.paused.append(pin)  # resumed after this batch's flows are in, whatever happens here
        if ip is not None or mac is not None:
            self.touch(md.get("metadata", 0), ip, mac)

    def resume_paused(self, conn: Any) -> None:
        """Let the paused misses go on: after the bundle with their destinations' flows (same connection,
        so OVS has applied it first). Each goes at most once; a failed resume drops only that packet."""
        pins, self.paused = self.paused, []
        for pin in pins:
            try:
                conn.resume(pin)
                self.stats.resumed += 1
            except Exception as exc:  # noqa: BLE001 - a disconnected switch lost the continuation anyway
                log.debug("resuming a paused miss failed: %s", exc)

    def touch(self, dp_id: int, ip: str | None, mac: int | None = None) -> int:
        """Want the remote ports of switch `dp_id` with this IP or MAC; returns how many were new."""
        if not self.enabled:
            return 0
        view, now, new = self.view, self.clock(), 0
        self_id, found = view.facts.get(("self",)), False
        for ls_key in view.members(("I", "dp_id", dp_id)):
            if ls_key[0] != "LS":
                continue
            ls = ls_key[1]
            keys = set(view.members(("I", "ls_ip", ls, ip))) if ip else set()
            if mac is not None:
                keys |= set(view.members(("I", "ls_mac", ls, mac)))
            keys |= self.dormant.find(ls, ip, mac)
            for k in sorted(keys):
                lsp = self.dormant.records[k][0] if k in self.dormant else view.facts.get(k)
                if lsp is None or lsp.peer or lsp.ip == PATCH_IP or (lsp.chassis and lsp.chassis == self_id):
                    continue  # router and patch ports are always programmed, and so are our own
                found = True
                if k not in self.wants:
                    new += 1
                    self.wants[k] = now
                    self._wake(k, self._changed)
                    view.apply(want_key(ls, k[2]), True, self._changed)
                self.wants[k] = now
        self.stats.learned += new
        if not found:
            self.stats.unknown += 1
        return new

    def restore(self, status: dict) -> int:
        """At start-up, the previous run's demand set (its status file, `wanted`): a restart keeps the flows
        this host learned instead of deleting them, sending their traffic through the helper and learning them
        again. Ports gone or now local are skipped; the rest age as if just learned. Returns how many."""
        if not self.enabled:
            return 0
        n, now, self_id = 0, self.clock(), self.self_id or self.view.facts.get(("self",))
        mine = status.get("ondemand") if isinstance(status, dict) else None
        wanted = mine.get("wanted") if isinstance(mine, dict) else None
        for pair in wanted if isinstance(wanted, list) else []:  # a damaged file must not stop the start
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                continue
            k = ("lsp", pair[0], pair[1])
            lsp = self.dormant.records[k][0] if k in self.dormant else self.view.facts.get(k)
            if lsp is None or lsp.peer or lsp.ip == PATCH_IP or (lsp.chassis and lsp.chassis == self_id):
                continue
            if k not in self.wants:
                self._wake(k, self._changed)
                self.view.apply(want_key(k[1], k[2]), True, self._changed)
                n += 1
            self.wants[k] = now
        return n

    def take_changed(self) -> set[tuple]:
        """Fact keys changed by learning and aging since the last call (for the engine)."""
        out, self._changed = self._changed, set()
        return out

    def refresh(self, changed: set[tuple]) -> None:
        """Before the engine runs: forget wanted ports that were deleted, and keep `("wantch", chassis)`
        equal to the chassis the wanted ports sit on (a wanted port may move). Adds what it changes."""
        if not self.enabled:
            return
        woken = [k[1] for k in changed if k[0] in ("bind", "plugged") and k in self.view.facts]
        if woken:
            self.wake_named(woken, changed)
        if not self.wants and not self._chassis:
            return
        if not any(k in self.wants or k[0] == "want" for k in changed):
            return
        for k in [k for k in self.wants if k not in self.view.facts]:
            self._forget(k, changed)
            self.stats.gone += 1
        counts: dict[str, int] = {}
        for k in self.wants:
            ch = where(self.view.facts[k])
            if ch:
                counts[ch] = counts.get(ch, 0) + 1
        for ch in self._chassis.keys() - counts.keys():
            self.view.apply(wantch_key(ch), None, changed)
        for ch in counts.keys() - self._chassis.keys():
            self.view.apply(wantch_key(ch), True, changed)
        self._chassis = counts

    def _forget(self, k: tuple, changed: set[tuple]) -> None:
        self.wants.pop(k, None)
        self._packets.pop(k, None)
        self.view.apply(want_key(k[1], k[2]), None, changed)
        obj = self.view.facts.get(k)
        if obj is not None and self._can_sleep(k, obj):  # back to sleep until the next miss
            created = self.view.created.get(k, 0)
            self.view.apply(k, None, changed)
            self.dormant.put(k, obj, created)

    # ------------------------------------------------------------------ aging (main loop)
    def observe(self, packets: dict[int, int], owner_flows: dict[tuple, tuple]) -> int:
        """Flow counters of the lookup stage (cookie -> packets, from Ager): a wanted port whose lookup
        flows carried a packet since the last look is in use; one idle for `idle` seconds is forgotten.
        Returns how many were forgotten (their keys wait in take_changed)."""
        now, aged = self.clock(), 0
        for k in list(self.wants):
            seen = sum(packets.get(f.cookie, 0) for f in owner_flows.get(k, ()) if f.table == T.LS_IN_LOOKUP)
            if seen != self._packets.get(k):
                self._packets[k] = seen
                if seen:
                    self.wants[k] = now
            elif now - self.wants[k] >= self.idle:
                self._forget(k, self._changed)
                aged += 1
        self.stats.aged += aged
        return aged

    def status(self) -> dict[str, Any]:
        """Counters, and the demand set itself (`wanted`: [switch, port] pairs) so that `tuplenet check`
        can compute what this host should have installed."""
        st = self.stats
        return {"enabled": self.enabled, "idle_s": self.idle, "wanted_ports": len(self.wants),
                "wanted_chassis": len(self._chassis), "misses": st.misses, "learned": st.learned,
                "unknown": st.unknown, "aged": st.aged, "gone": st.gone, "resumed": st.resumed, "dormant_ports": len(self.dormant),
                "wanted": sorted([k[1], k[2]] for k in self.wants)}


def demand_facts(view: View, status: dict) -> dict[tuple, Any]:
    """The want/wantch facts of a running agent, from its status (for `tuplenet check`)."""
    out: dict[tuple, Any] = {}
    mine = status.get("ondemand") if isinstance(status, dict) else None
    wanted = mine.get("wanted") if isinstance(mine, dict) else None
    for pair in wanted if isinstance(wanted, list) else []:  # a damaged status file: nothing
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            continue
        lsp = view.facts.get(("lsp", pair[0], pair[1]))
        if lsp is None:
            continue
        out[want_key(pair[0], pair[1])] = True
        if where(lsp):
            out[wantch_key(where(lsp))] = True
    return out


def where(lsp: Any) -> str | None:
    """The chassis peers send a port's frames to: where it is bound, else where it is requested (the pipeline
    tunnels an unbound port to its requested chassis before the claim, pipeline/switching.py)."""
    return lsp.chassis or lsp.requested_chassis or None


class Ager(threading.Thread):
    """Reads the lookup stage's flow counters every `period` seconds and hands them to `post` (the main
    loop's queue). It never touches the view or the engine; a failed read is skipped."""

    def __init__(self, conn: Any, period: float, post: Callable[[dict[int, int]], None]) -> None:
        super().__init__(name="ondemand-ager", daemon=True)
        self.conn, self.period, self.post = conn, period, post
        self._stop_ev = threading.Event()

    def run(self) -> None:
        while not self._stop_ev.wait(self.period):
            try:
                self.post(lookup_counters(self.conn))
            except Exception as exc:  # noqa: BLE001 - disconnected or slow switch: try again next period
                log.debug("on-demand aging: reading counters failed: %s", exc)

    def stop(self) -> None:
        self._stop_ev.set()


def lookup_counters(conn: Any, timeout: float = 10.0) -> dict[int, int]:
    """cookie -> packet count of our flows in the lookup stage."""
    out: dict[int, int] = {}

    def sink(body: bytes) -> None:
        for st in c.iter_flow_stats(body):
            out[st.cookie] = st.n_packets

    conn.request(lambda x: c.flow_stats_request(COOKIE_TAG << COOKIE_TAG_SHIFT, COOKIE_TAG_MASK,
                                                table=T.LS_IN_LOOKUP, xid=x),
                 timeout, "on-demand counters", sink=sink)
    return out


def aging_period(idle: float) -> float:
    """Look at the counters a few times per idle period (bounded: cheap, and at most 30 s late)."""
    return max(0.2, min(idle / 4, 30.0))

"""The agent's part of a live trace (issue 11 §3, reference §3.9.10): run the trace commands addressed to
this chassis and report every trace point a marked packet reaches here.

- A command (`communicate/push/<us>/cmd/<id>`, trace/livewire.py) names a local port and a frame: the agent
  packet-outs the frame into table 0 as if the port had sent it, with TRACE and the command id in reg10
  (stages.REGISTERS), and reports the source hop.
- A marked packet arriving by tunnel reaches the trace point (pipeline/tracepoints.py): the agent reports
  that hop.
- A report is this host's part of the trace document: the packet as it entered, walked through the flows
  this agent computed *and OVS holds* (cookies dumped from the switch, so a flow removed by hand shows as a
  miss) by the offline trace's interpreter, with stage, owner and rule per step, the outcomes and the
  chassis the packet was tunnelled to. It goes to etcd under `communicate/cmd_result/<id>/<seq>/<us>`
  (leased 30 s), where tpctl assembles the hops in the order the packet took.

The main loop only decodes, injects and snapshots the flow tables (references, no copies of flows); the
interpretation and the etcd writes run on one worker thread, so a trace never blocks the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..store import Compacted, StoreError
from ..trace import livewire as W
from . import tables as T
from .flow import Load, Resubmit

log = logging.getLogger(__name__)

MAX_COMMANDS = 4096  # command ids remembered for their sequence numbers (oldest forgotten first)
# reg10 of the packet as the interpreter should see it: the mark (TRACE, sequence, command id) cleared, so the
# walk is the one an unmarked packet takes (and the trace point's own copy is not reported as an outcome).
_UNMARK = 0xFF & ~T.F_TRACE


def mark(cmd_id: int) -> int:
    """reg10 of an injected packet: TRACE, sequence 0, the command id in bits 16-31."""
    return T.F_TRACE | ((cmd_id & 0xFFFF) << 16)


def unmarked_option(tun_metadata0: int) -> int:
    """The Geneve option as it arrived, with the reg10 part's mark bits cleared (GENEVE_LAYOUT: reg10 at 32)."""
    return (tun_metadata0 & 0xFFFFFFFF) | ((((tun_metadata0 >> 32) & _UNMARK)) << 32)


@dataclass
class Snapshot:
    """What a walk needs, taken on the main loop (the worker never reads the live view or engine)."""

    flows: list
    owners: dict
    groups: list
    names: Any
    ports: dict


class LiveTrace:
    OPCODE = T.OP_TRACE  # the trace point's controller() opcode (pipeline/tracepoints.py)

    def __init__(self, store, system_id: str, conn, view, engine, post) -> None:
        self.store, self.sid, self.conn, self.view, self.engine = store, system_id, conn, view, engine
        self.post = post  # puts an event on the agent's queue (called from the watch thread)
        self.stats = {"commands": 0, "bad_commands": 0, "reports": 0, "report_errors": 0, "trace_points": 0}
        self._seq: OrderedDict[int, int] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livetrace")
        self._stop = threading.Event()
        self._watch = None
        self._logged: set[str] = set()
        self._snap: tuple[tuple, Snapshot] | None = None

    # ------------------------------------------------------------------ command watch (own thread)
    def start(self) -> None:
        threading.Thread(target=self._run, name="livetrace-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch = self.store.watch(W.command_prefix(self.sid), 0)  # from now on: old commands are stale
                for batch in self._watch:
                    if self._stop.is_set():
                        return
                    for ev in batch.events:
                        if ev.type == "PUT":
                            self.post(("trace_cmd", ev.kv.key, ev.kv.value))
            except (StoreError, Compacted) as exc:
                if self._stop.is_set():
                    return
                self._once("watch", "live-trace command watch failed: %s; retrying", exc)
                self._stop.wait(0.5)
            except Exception:  # noqa: BLE001 - the watch thread must not die silently
                log.exception("live-trace command watch crashed; retrying")
                self._stop.wait(0.5)

    # ------------------------------------------------------------------ main loop
    def command(self, key: str, value: str) -> None:
        """A trace command for this chassis: inject the marked frame at the port and report the source hop."""
        try:
            cmd = W.decode_command(key, value)
        except W.WireError as exc:
            self.stats["bad_commands"] += 1
            self._once("bad", "ignoring a bad live-trace command %s: %s", key[:80], exc)
            return
        self.stats["commands"] += 1
        snap = self._snapshot()
        hits = sorted(o for o, p in snap.ports.items() if p.kind in ("vif", "patch") and p.name == cmd.port
                      and (not cmd.switch or p.switch == cmd.switch))
        source = f"{cmd.switch}/{cmd.port}" if cmd.switch else cmd.port
        if not hits:
            self._submit(self._error, cmd.cmd_id, f"{source} has no interface on chassis {self.sid}")
            return
        from ..trace.packet import TraceError, decode_frame

        try:
            pkt = decode_frame(cmd.frame)
        except TraceError as exc:
            self._submit(self._error, cmd.cmd_id, f"frame: {exc}")
            return
        try:
            self.conn.packet_out(cmd.frame, (Load(T.R_FLAGS, mark(cmd.cmd_id)), Resubmit(T.CLASSIFY)), in_port=hits[0])
        except Exception as exc:  # noqa: BLE001 - OpenFlow down: say so instead of a silent timeout
            self._submit(self._error, cmd.cmd_id, f"cannot inject on {self.sid}: {exc}")
            return
        self._submit(self._report, cmd.cmd_id, snap, pkt, hits[0], None, source, 0, {})

    def trace_point(self, pin: Any) -> None:
        """A marked packet reached a trace point here (pinctrl, opcode OP_TRACE): report this hop."""
        md = pin.metadata
        flags = md.get(T.R_FLAGS, 0)
        if not flags & T.F_TRACE:
            return
        self.stats["trace_points"] += 1
        from ..trace.packet import TraceError, decode_frame

        try:
            pkt = decode_frame(bytes(pin.data))
        except TraceError:
            return
        for f in ("tun_id", "tun_src", "tun_dst"):
            pkt[f] = md.get(f, 0)
        pkt["tun_metadata0"] = unmarked_option(md.get("tun_metadata0", 0))
        table = pin.userdata[4] if len(pin.userdata) > 4 else 0
        if table == T.DROP:  # the switch dropped it: say where (the walk may have assumed otherwise)
            self._submit(self._switch_drop, flags >> 16, md, self._snapshot().names)
            return
        fields = {"datapath_id": md.get("metadata", 0) & 0xFFFFFF,
                  "src_port_id": md.get(T.R_SRC_PORT, 0) & 0xFFFF, "dst_port_id": md.get(T.R_DST_PORT, 0) & 0xFFFF,
                  "tun_src": md.get("tun_src", 0)}
        snap = self._snapshot()
        came_from = snap.names.chassis_by_ip(md.get("tun_src", 0))
        self._submit(self._report, flags >> 16, snap, pkt, md.get("in_port", 0), came_from, None, table, fields)

    def _snapshot(self) -> Snapshot:
        """The flow tables and names as of now; reused until the engine runs again or the view changes size
        (a --detect round injects and receives many packets between two computations)."""
        from ..trace.compiled import owner_index
        from ..trace.fabric import ports_of
        from ..trace.names import Names

        e = self.engine
        st = getattr(e, "stats", None)
        key = (getattr(st, "full_runs", None), getattr(st, "incremental_runs", None), len(self.view.facts))
        if self._snap is not None and self._snap[0] == key and None not in key[:2]:
            return self._snap[1]
        outputs = getattr(e, "desired_outputs", None)
        groups = list(outputs("group").values()) if outputs is not None else []
        snap = Snapshot(list(e.active.values()), owner_index(e.owner_flows), groups, Names(self.view.facts),
                        ports_of(self.view, self.sid))
        self._snap = (key, snap)
        return snap

    def _next_seq(self, cmd_id: int) -> int:
        seq = self._seq.pop(cmd_id, 0)
        self._seq[cmd_id] = seq + 1
        if len(self._seq) > MAX_COMMANDS:
            self._seq.popitem(last=False)
        return seq

    def _submit(self, fn, cmd_id: int, *args: Any) -> None:
        seq = self._next_seq(cmd_id)  # on the main loop: the order of the reports is the order of events
        try:
            self._pool.submit(self._guarded, fn, cmd_id, seq, *args)
        except RuntimeError:  # shutting down
            pass

    # ------------------------------------------------------------------ worker thread
    def _guarded(self, fn, *args: Any) -> None:
        try:
            fn(*args)
            self.stats["reports"] += 1
        except Exception as exc:  # noqa: BLE001 - a report must never take the worker down
            self.stats["report_errors"] += 1
            self._once(type(exc).__name__, "live-trace report failed: %s", exc)

    def _report(self, cmd_id: int, seq: int, snap: Snapshot, pkt: dict[str, int], in_port: int,
                came_from: str | None, source: str | None, table: int, fields: dict[str, int]) -> None:
        detail = hop_detail(self.sid, snap, self._installed(snap.flows), pkt, in_port, came_from, source)
        self._put(W.Result(cmd_id, seq, self.sid, table, hop=detail, **fields))

    def _switch_drop(self, cmd_id: int, seq: int, md: dict[str, int], names: Any) -> None:
        dp, src, dst = md.get("metadata", 0) & 0xFFFFFF, md.get(T.R_SRC_PORT, 0) & 0xFFFF, md.get(T.R_DST_PORT, 0) & 0xFFFF
        kind, name = names.datapath(dp)
        drop = {"datapath": name, "datapath_type": kind, "from_port": names.port(dp, src),
                "to_port": names.port(dp, dst)}
        self._put(W.Result(cmd_id, seq, self.sid, T.DROP, dp, src, dst, md.get("tun_src", 0),
                           hop={"switch_drop": drop}))

    def _error(self, cmd_id: int, seq: int, text: str) -> None:
        self._put(W.Result(cmd_id, seq, self.sid, 0, hop={"error": text}))

    def _installed(self, flows: list) -> list:
        """The flows OVS really holds (by cookie); all of them if the switch cannot be asked."""
        try:
            cookies = self.conn.dump_cookies(timeout=2.0)
        except Exception as exc:  # noqa: BLE001
            self._once("dump", "live trace: cannot dump the installed flows (%s); walking the computed ones", exc)
            return flows
        return [f for f in flows if f.cookie in cookies]

    def _put(self, result: W.Result) -> None:
        lease = self.store.lease_grant(W.RESULT_TTL)
        self.store.put(W.result_key(result.cmd_id, result.seq, self.sid), W.encode_result(result), lease.id)

    def _once(self, kind: str, msg: str, *args: Any) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(msg, *args)


def hop_detail(chassis: str, snap: Snapshot, flows: list, pkt: dict[str, int], in_port: int,
               came_from: str | None, source: str | None) -> dict[str, Any]:
    """This host's part of the trace document: the walk of `pkt` entering on `in_port` through `flows`."""
    from ..trace.compiled import compile_groups, compile_tables
    from ..trace.fabric import hop_outcomes
    from ..trace.interp import ChassisPipeline
    from ..trace.report import describe_packet, hop_json, packet_fields

    cp = ChassisPipeline(chassis, compile_tables(flows, snap.owners), snap.ports, snap.names,
                         snap.names.chassis_ip, compile_groups(snap.groups))
    hop = cp.walk(pkt, in_port)
    outcomes = [{**o, "packet": packet_fields(o["packet"])} if o.get("packet") is not None
                else {k: v for k, v in o.items() if k != "packet"} for o in hop_outcomes(hop)]
    detail: dict[str, Any] = {
        "hop": hop_json(hop, came_from, snap.names, cp.port_label(in_port)), "outcomes": outcomes,
        "sends": [s.chassis for s in hop.sends if s.chassis]}
    if source is not None:
        detail.update(source=source, packet=packet_fields(pkt), summary=describe_packet(pkt))
    return detail

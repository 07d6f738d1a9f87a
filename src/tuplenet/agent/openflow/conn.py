"""The agent's persistent OpenFlow connection to `<OVS_RUNDIR>/<bridge>.mgmt`: flows, dumps, packets.

The .mgmt socket is a service connection: connecting never flushes flows (unlike set-controller), which
is what makes hitless restarts possible. Flow changes go in one ordered bundle per apply(): all or nothing,
except that a bundle of adds only goes in without exactly the adds OVS rejects (see apply()).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

from tuplenet.agent.flow import COOKIE_TAG, COOKIE_TAG_MASK, COOKIE_TAG_SHIFT, OFPP_CONTROLLER, Action, Flow
from tuplenet.agent.stages import GENEVE_OPTION

from . import codec as c
from . import groups as gr
from . import meters as mt
from .errors import ErrorMsg, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout
from .transport import Transport, _Pending

TUN_METADATA0 = c.TlvMapping(*GENEVE_OPTION, 0)  # the option the stage registry declares, as tun_metadata0
_CHUNK_BYTES = 1 << 20
_MAX_MSG = 0xFFFF
_MAX_LINES = 20


@dataclass
class _Bundle:
    """The xid range of an apply() in flight; errors for any of its messages are collected here."""

    first: int
    count: int
    errors: list[ErrorMsg] = field(default_factory=list)

    def owns(self, xid: int) -> bool:
        return (xid - self.first) % (1 << 32) < self.count


class OpenFlowConnection(Transport):
    """OpenFlowConnection(path, on_packet_in=cb, on_connect=cb).start(); thread-safe."""

    def __init__(self, path: str, on_packet_in: Callable[[c.PacketIn], None] | None = None,
                 on_connect: Callable[[], None] | None = None, logger: logging.Logger | None = None,
                 echo_interval: float = 10.0, packet_in_queue: int = 4096) -> None:
        super().__init__(path, on_packet_in, on_connect, logger, echo_interval, packet_in_queue)
        self._bundle: _Bundle | None = None
        self._apply_lock = threading.Lock()
        self._bundle_id = 0

    # ------------------------------------------------------------------------------------- flows
    def apply(self, deletes: Iterable[int], adds: Iterable[Flow], timeout: float | None = None,
              pre: Sequence[tuple[str, Callable[[int], bytes]]] = (),
              post: Sequence[tuple[str, Callable[[int], bytes]]] = ()) -> None:
        """One atomic, ordered bundle: the `pre` messages (group adds/modifies: (label, build(xid))), delete
        each cookie, add each flow, then the `post` messages (group deletes). All or nothing.

        Messages are streamed without waiting for each; a barrier before the commit tells us whether
        OVS rejected any of them while adding to the bundle, in which case we discard instead.

        A bundle of flow adds only goes out with its commit in the same write: one round trip instead of
        two, on every port-up's path. OVS commits what it accepted, so a rejected add leaves the others in;
        that is the state the caller's isolation of a bad flow reaches anyway (nothing to delete, every good
        flow in), so OpenFlowError then has `applied` set and names exactly the rejected flows. A commit
        that fails (a full table) still applies nothing.
        """
        deletes = list(deletes)
        adds = list(adds)
        pre, post = list(pre), list(post)
        if not deletes and not adds and not pre and not post:
            return
        n = len(deletes) + len(adds) + len(pre) + len(post)
        timeout = timeout if timeout is not None else 10.0 + n / 5000.0
        deadline = time.monotonic() + timeout
        with self._apply_lock:
            self._bundle_id = bid = (self._bundle_id + 1) % (1 << 32)
            first = self._xids(n + 1)  # open, then one per message
            bundle = _Bundle(first, n + 1)
            self._bundle = bundle
            try:
                if not (deletes or pre or post):
                    self._apply_adds(bid, first, bundle, adds, deadline)
                    return
                self._stream(bid, first, deletes, adds, pre, post)
                self.barrier(max(0.1, deadline - time.monotonic()))
                if bundle.errors:
                    self._discard(bid)
                    raise self._rejection(bundle, deletes, adds, None, pre, post)
                commit = self._send_commit(bid, self._send)
                self._committed(bid, bundle, *commit, deadline, deletes, adds, pre, post)
            except OpenFlowTimeout:
                # The bundle's fate is unknown: reconnecting makes OVS drop it if uncommitted, and
                # on_connect then re-syncs from what is really installed.
                self.reset(f"apply of {n} flow changes timed out")
                raise
            finally:
                self._bundle = None

    def _apply_adds(self, bid: int, first: int, bundle: _Bundle, adds: list[Flow], deadline: float) -> None:
        """Open, adds and commit in one write; wait for the commit's answer (see apply)."""
        commit = self._send_commit(bid, lambda msg: self._stream(bid, first, [], adds, commit=msg))
        self._committed(bid, bundle, *commit, deadline, [], adds)
        if bundle.errors:  # every error of an earlier message is in: OVS answers in order
            raise self._rejection(bundle, [], adds, applied=True)

    def _send_commit(self, bid: int, send: Callable[[bytes], None]) -> tuple[int, _Pending]:
        """send(the commit message), its answer awaited under a registered xid (forgotten if sending fails)."""
        xid = self._xids()
        pending = self._register(xid)
        try:
            send(c.bundle_control(bid, c.OFPBCT_COMMIT_REQUEST, c.BUNDLE_FLAGS, xid=xid))
        except BaseException:
            self._unregister(xid)
            raise
        return xid, pending

    def _committed(self, bid: int, bundle: _Bundle, commit_xid: int, pending: _Pending, deadline: float,
                   deletes: list[int], adds: list[Flow], pre: Sequence = (), post: Sequence = ()) -> None:
        """Wait for the answer to the commit sent as `commit_xid`: a failed commit applied nothing."""
        try:
            mtype, body = self._wait(commit_xid, pending, max(0.1, deadline - time.monotonic()), "bundle commit")
        except OpenFlowError as exc:
            if isinstance(exc, OpenFlowTimeout | OpenFlowDisconnected):
                raise
            raise self._rejection(bundle, deletes, adds, exc.errors, pre, post) from None
        reply = c.parse_bundle_control(body) if mtype == c.OFPT_BUNDLE_CONTROL else None
        if reply is None or (reply.bundle_id, reply.type) != (bid, c.OFPBCT_COMMIT_REPLY):
            self.reset("unexpected reply to a bundle commit")
            raise OpenFlowError(f"unexpected reply to bundle commit: type {mtype}, {reply}")

    def _stream(self, bid: int, first: int, deletes: list[int], adds: list[Flow],
                pre: Sequence[tuple[str, Callable[[int], bytes]]] = (),
                post: Sequence[tuple[str, Callable[[int], bytes]]] = (), commit: bytes = b"") -> None:
        """Send open + add-messages in ~1 MB writes; on an encoding error discard what was sent."""
        parts = [c.bundle_control(bid, c.OFPBCT_OPEN_REQUEST, xid=first)]
        size, sent, xid = 16, False, first + 1
        try:
            for msg in pre:  # (label, build(xid), ...)
                m = c.bundle_add(bid, msg[1](xid & 0xFFFFFFFF))
                parts.append(m)
                size += len(m)
                xid += 1
            for cookie in deletes:
                m = c.bundle_add(bid, c.flow_delete_by_cookie(cookie, xid & 0xFFFFFFFF))
                parts.append(m)
                size += len(m)
                xid += 1
                if size >= _CHUNK_BYTES:
                    self._send(b"".join(parts))
                    parts, size, sent = [], 0, True
            add_flow = c.bundle_add_flow
            for flow in adds:
                m = add_flow(bid, flow, xid & 0xFFFFFFFF)
                if len(m) > _MAX_MSG:
                    raise ValueError(f"flow too large for one OpenFlow message ({len(m)} bytes)")
                parts.append(m)
                size += len(m)
                xid += 1
                if size >= _CHUNK_BYTES:
                    self._send(b"".join(parts))
                    parts, size, sent = [], 0, True
            for msg in post:
                m = c.bundle_add(bid, msg[1](xid & 0xFFFFFFFF))
                parts.append(m)
                xid += 1
            if commit:
                parts.append(commit)
            if parts:
                self._send(b"".join(parts))
        except (ValueError, TypeError, KeyError, OverflowError, struct.error) as exc:
            if sent:
                self._discard(bid)
            raise OpenFlowError(f"cannot encode {self._label(xid - first, deletes, adds, pre, post)}: {exc}") from exc

    @staticmethod
    def _label(i: int, deletes: Sequence, adds: Sequence, pre: Sequence, post: Sequence) -> str:
        """What message `i` of a bundle (0: the open) was."""
        if i == 0:
            return "bundle open"
        i -= 1
        if i < len(pre):
            return pre[i][0]
        i -= len(pre)
        if i < len(deletes):
            return f"delete cookie {deletes[i]:#x}"
        i -= len(deletes)
        if i < len(adds):
            return f"add {adds[i].to_text()}"
        i -= len(adds)
        return post[i][0] if i < len(post) else f"message {i}"

    def _discard(self, bid: int) -> None:
        try:
            self.request(lambda x: c.bundle_control(bid, c.OFPBCT_DISCARD_REQUEST, xid=x), 5.0, "discard")
        except OpenFlowError as exc:  # e.g. the open itself failed: nothing to discard
            self.log.debug("bundle discard: %s", exc)

    @classmethod
    def _rejection(cls, bundle: _Bundle, deletes: list[int], adds: list[Flow],
                   commit_errors: list[ErrorMsg] | None = None, pre: Sequence = (),
                   post: Sequence = (), applied: bool = False) -> OpenFlowError:
        """An OpenFlowError naming each rejected message; `.rejected` pairs the Flow (or the deleted
        cookie, or a group message's label) with its error, so a caller can drop exactly those; `.applied`
        says the rest of the bundle is in (an adds-only bundle committed without them)."""
        lines, rejected = [], []
        for e in bundle.errors:
            i = (e.xid - bundle.first) % (1 << 32)
            j = i - 1 - len(pre)
            if i == 0:
                lines.append(f"bundle open: {e.name}")
            elif 0 <= j < len(deletes):
                rejected.append((deletes[j], e))
                lines.append(f"delete cookie={deletes[j]:#x}: {e.name}")
            elif 0 <= j - len(deletes) < len(adds):
                flow = adds[j - len(deletes)]
                rejected.append((flow, e))
                lines.append(f"add {flow.to_text() if len(lines) < _MAX_LINES else ''}: {e.name}")
            else:
                label = cls._label(i, deletes, adds, pre, post)
                rejected.append((label, e))
                lines.append(f"{label}: {e.name}")
        lines += [f"bundle commit: {e.name}" for e in (commit_errors or [])]
        if len(lines) > _MAX_LINES:  # keep the message readable when a whole batch is bad
            lines[_MAX_LINES:] = [f"... and {len(lines) - _MAX_LINES} more"]
        outcome = "the rest applied" if applied else "nothing applied"
        exc = OpenFlowError(f"bundle of {len(deletes)} deletes + {len(adds)} adds rejected, {outcome}: "
                            + "; ".join(lines or ["unknown error"]), bundle.errors + (commit_errors or []))
        exc.rejected = rejected
        exc.applied = applied
        return exc

    def dump_flows_raw(self, cookie: int = 0, cookie_mask: int = 0,
                       timeout: float = 30.0) -> list[c.FlowStats]:
        """Flow statistics with raw match/instruction bytes (for diagnostics)."""
        out: list[c.FlowStats] = []
        self.request(lambda x: c.flow_stats_request(cookie, cookie_mask, xid=x), timeout, "flow dump",
                     sink=lambda body: out.extend(c.iter_flow_stats(body)))
        return out

    def dump_cookies(self, tag_only: bool = True, timeout: float = 30.0) -> dict[int, tuple[int, int]]:
        """cookie -> (table, priority) of the installed flows (only ours when tag_only)."""
        out: dict[int, tuple[int, int]] = {}

        def sink(body: bytes) -> None:
            for cookie, table, priority in c.iter_flow_cookies(body):
                out[cookie] = (table, priority)

        ck, mask = (COOKIE_TAG << COOKIE_TAG_SHIFT, COOKIE_TAG_MASK) if tag_only else (0, 0)
        self.request(lambda x: c.flow_stats_request(ck, mask, xid=x), timeout, "flow dump", sink=sink)
        return out

    # ------------------------------------------------------------------------------------- groups
    def dump_groups(self, timeout: float = 5.0) -> dict[int, gr.GroupDesc]:
        """group id -> description of every group on the bridge (ours and others')."""
        out: dict[int, gr.GroupDesc] = {}

        def sink(body: bytes) -> None:
            out.update((g.group_id, g) for g in gr.iter_group_descs(body))

        self.request(lambda x: gr.group_desc_request(xid=x), timeout, "group desc dump", sink=sink)
        return out

    # ------------------------------------------------------------------------------------- meters
    def dump_meters(self, timeout: float = 5.0) -> dict[int, mt.MeterConfig]:
        """meter id -> configuration of every meter on the bridge (ours and others')."""
        out: dict[int, mt.MeterConfig] = {}

        def sink(body: bytes) -> None:
            out.update((m.meter_id, m) for m in mt.iter_meter_configs(body))

        self.request(lambda x: mt.meter_config_request(xid=x), timeout, "meter config dump", sink=sink)
        return out

    def meter_stats(self, timeout: float = 5.0) -> list[mt.MeterStats]:
        out: list[mt.MeterStats] = []
        self.request(lambda x: mt.meter_stats_request(xid=x), timeout, "meter stats",
                     sink=lambda body: out.extend(mt.iter_meter_stats(body)))
        return out

    def meter_mods(self, add: Iterable[mt.MeterSpec] = (), modify: Iterable[mt.MeterSpec] = (),
                   delete: Iterable[int] = (), timeout: float = 5.0) -> None:
        """Send the meter changes (meters cannot go in a bundle) and a barrier; raise naming each
        meter the switch rejected (the others are applied)."""
        msgs: list[tuple[str, Callable[[int], bytes]]] = []
        msgs += [(f"add {m.text()}", partial(mt.meter_mod, mt.OFPMC_ADD, m)) for m in add]
        msgs += [(f"modify {m.text()}", partial(mt.meter_mod, mt.OFPMC_MODIFY, m)) for m in modify]
        msgs += [(f"delete meter {i:#x}", partial(mt.meter_delete, i)) for i in delete]
        if not msgs:
            return
        first = self._xids(len(msgs))
        pend = [self._register((first + i) % (1 << 32)) for i in range(len(msgs))]
        try:
            self._send(b"".join(build((first + i) % (1 << 32)) for i, (_w, build) in enumerate(msgs)))
            self.barrier(timeout)
        finally:
            with self._pending_lock:
                for i in range(len(msgs)):
                    self._pending.pop((first + i) % (1 << 32), None)
        failed = [(what, p.error) for (what, _b), p in zip(msgs, pend, strict=True) if p.error is not None]
        if failed:
            raise OpenFlowError("meter changes rejected: " + "; ".join(f"{w}: {e.name}" for w, e in failed),
                                [e for _w, e in failed if e is not None])

    # ------------------------------------------------------------------------------- packets, TLV
    def packet_out(self, data: bytes, actions: tuple[Action, ...], in_port: int = OFPP_CONTROLLER) -> None:
        """Fire and forget; an error is logged (call barrier() to be sure it was processed)."""
        self._send(c.packet_out(data, actions, in_port, self._xids()))

    def resume(self, pin: c.PacketIn, data: bytes | None = None) -> None:
        """Continue a paused packet-in (optionally with a modified packet)."""
        self._send(c.resume(pin, data, self._xids()))

    def tlv_mappings(self, timeout: float = 5.0) -> list[c.TlvMapping]:
        _t, body = self.request(lambda x: c.tlv_table_request(x), timeout, "TLV table request")
        return c.parse_tlv_table_reply(body[8:])

    def tlv_map_add(self, mapping: c.TlvMapping, timeout: float = 5.0) -> None:
        """NXT_TLV_TABLE_MOD add; an existing mapping fails with NXTTMFC_ALREADY_MAPPED or _DUP_ENTRY."""
        self._checked(lambda x: c.tlv_table_mod_add([mapping], x), timeout, "TLV table mod")

    def ensure_tlv_map(self, mapping: c.TlvMapping = TUN_METADATA0, timeout: float = 5.0) -> bool:
        """Map Geneve option {class,type,len} to tun_metadata<index>; True if we added it."""
        for attempt in range(2):
            current = self.tlv_mappings(timeout)
            if mapping in current:
                return False
            clash = [m for m in current if m.index == mapping.index
                     or (m.option_class, m.option_type) == (mapping.option_class, mapping.option_type)]
            if clash:
                raise OpenFlowError(f"TLV map conflict: want {mapping}, switch has {clash}")
            try:
                self.tlv_map_add(mapping, timeout)
                return True
            except OpenFlowError as exc:  # someone else added it between our request and mod
                if attempt or not set(exc.names) & {"NXTTMFC_ALREADY_MAPPED", "NXTTMFC_DUP_ENTRY"}:
                    raise
        return False

    def _route_error(self, err: ErrorMsg) -> bool:
        bundle = self._bundle
        if bundle is not None and bundle.owns(err.xid):
            bundle.errors.append(err)
            return True
        return False

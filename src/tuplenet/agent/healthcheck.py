"""Load-balancer health checks: probe the backends bound to this chassis, decide up/down with rise/fall
thresholds, report verdict changes (healthcheck_service.py writes them to etcd).

`Checker` is pure (time is passed in, packets go to a callback), so the state machine and the schedule
are unit-tested without threads. The schedule keeps the budget "a failed backend leaves service within 2 ×
interval": probes start every `interval`; once a result disagrees with the verdict ("in doubt") the next
ones start every interval / threshold, and a probe times out after at most interval / (2 × fall). A
backend failing just after a good probe is then declared down after at most
interval + (fall - 1) · interval / fall + interval / (2 · fall) < 2 × interval.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.lb import Backend
from ..model.lb import health_key as lb_health_key
from . import healthprobe as hp
from .healthprobe import ACK, FIN, PSH, RST, SYN, Segment

log = logging.getLogger(__name__)

TargetKey = tuple[str, str, str, str, int]  # (LS|LR, datapath name, lb name, backend ip, backend port)


@dataclass(frozen=True)
class Target:
    """One backend to probe from this chassis: where it is (its local ofport and MAC) and how to check it."""

    kind: str
    dp: str
    lb: str
    ip: str
    port: int
    check: str  # "tcp" or "http:<path>"
    interval: float
    rise: int
    fall: int
    ofport: int
    mac: str

    @property
    def key(self) -> TargetKey:
        return (self.kind, self.dp, self.lb, self.ip, self.port)

    @property
    def timeout(self) -> float:
        return min(max(self.interval / (2 * max(self.fall, 1)), 0.05), 3.0)


def health_key(key: TargetKey) -> str:
    """The etcd key (under the prefix) of a backend's verdict: present = out of service."""
    kind, dp, lb, ip, port = key
    return lb_health_key(kind, dp, lb, Backend(ip, port))


class Health:
    """Verdict with hysteresis: `fall` failures in a row take an up backend down, `rise` successes bring a
    down one back; a result agreeing with the verdict clears the count."""

    __slots__ = ("rise", "fall", "up", "count")

    def __init__(self, rise: int, fall: int, up: bool = True) -> None:
        self.rise, self.fall, self.up, self.count = max(rise, 1), max(fall, 1), up, 0

    def record(self, ok: bool) -> bool:
        """Account one probe result; True when the verdict changed."""
        if ok == self.up:
            self.count = 0
            return False
        self.count += 1
        if self.count >= (self.fall if self.up else self.rise):
            self.up, self.count = ok, 0
            return True
        return False

    @property
    def threshold(self) -> int:
        return self.fall if self.up else self.rise


@dataclass
class Probe:
    """One probe conversation: SYN, then (HTTP) the request, until a verdict, a reset or the deadline."""

    target: Target
    sport: int
    iss: int
    started: float
    deadline: float
    request: bytes = b""
    srv: int | None = None  # the backend's initial sequence number, once its SYN-ACK came
    buf: bytes = b""

    def segment(self, flags: int, seq: int, ack: int = 0, payload: bytes = b"") -> Segment:
        t = self.target
        return Segment(hp.MONITOR_IP, t.ip, self.sport, t.port, seq, ack, flags, payload)

    def first(self) -> Segment:
        return self.segment(SYN, self.iss)

    def reset(self) -> Segment:
        return self.segment(RST, self.iss + 1 + (len(self.request) if self.srv is not None else 0))

    def on_segment(self, seg: Segment) -> tuple[bool | None, list[Segment]]:
        """Feed a segment from the backend: (verdict or None while undecided, segments to send)."""
        if seg.flags & RST:
            return False, []
        if self.srv is None:
            if seg.flags & (SYN | ACK) != SYN | ACK or seg.ack != (self.iss + 1) & 0xFFFFFFFF:
                return None, []
            self.srv = seg.seq
            if not self.request:
                return True, [self.reset()]
            return None, [self.segment(ACK | PSH, self.iss + 1, self.srv + 1, self.request)]
        want = (self.srv + 1 + len(self.buf)) & 0xFFFFFFFF
        if seg.payload and seg.seq == want:
            self.buf += seg.payload[:2048]
            status = hp.http_status(self.buf)
            if status is not None:
                return 200 <= status < 400, [self.reset()]
        if seg.flags & FIN:
            return False, [self.reset()]
        return None, []


@dataclass
class CheckerStats:
    probes: int = 0
    ok: int = 0
    failed: int = 0
    timeouts: int = 0
    verdict_changes: int = 0
    frames: int = 0
    ignored: int = 0
    unsent: int = 0
    by_result: dict[str, int] = field(default_factory=dict)


class Checker:
    """Probes targets on schedule and keeps their verdicts. `send(target, frame)` puts a frame on the
    backend's port; `on_verdict(target, up)` is called once per verdict change."""

    def __init__(self, send: Callable[[Target, bytes], None], on_verdict: Callable[[Target, bool], None],
                 rng: random.Random | None = None) -> None:
        self.send = send
        self.on_verdict = on_verdict
        self.rng = rng or random.Random()
        self.targets: dict[TargetKey, Target] = {}
        self.health: dict[TargetKey, Health] = {}
        self.due: dict[TargetKey, float] = {}  # when each target's next probe starts
        # Lazy heaps (entries that no longer match `due` / `probes` are skipped): a tick costs what is due,
        # not the number of targets, so thousands of backends and a stream of replies stay cheap.
        self._due_heap: list[tuple[float, int, TargetKey]] = []
        self._deadlines: list[tuple[float, int]] = []
        self._seq = 0
        self.probes: dict[int, Probe] = {}  # source port -> probe in flight
        self.inflight: dict[TargetKey, int] = {}  # target -> its probe's source port
        self.stats = CheckerStats()
        self._next_port = self.rng.randrange(hp.PORT_COUNT)

    # ------------------------------------------------------------------ targets
    def set_targets(self, targets: dict[TargetKey, Target], now: float,
                    down: set[TargetKey] | frozenset = frozenset()) -> list[Target]:
        """Replace the target set. New targets start with the verdict in `down` (a verdict of ours found in
        etcd at start-up) or up; returns the removed targets that were down (their verdict must go)."""
        gone = []
        for key in list(self.targets):
            if key not in targets:
                old = self.targets.pop(key)
                h = self.health.pop(key)
                self.due.pop(key, None)
                self._abort(key)
                if not h.up:
                    gone.append(old)
        for key, t in targets.items():
            old = self.targets.get(key)
            self.targets[key] = t
            if old is None:
                self.health[key] = Health(t.rise, t.fall, up=key not in down)
                self._schedule(key, now + self.rng.uniform(0, min(t.interval, 1.0)))  # spread the first probes
            elif (old.rise, old.fall) != (t.rise, t.fall):
                h = self.health[key]
                h.rise, h.fall = max(t.rise, 1), max(t.fall, 1)
            if old is not None and old.interval != t.interval:
                self._schedule(key, min(self.due.get(key, now), now + t.interval))
        return gone

    def _abort(self, key: TargetKey) -> None:
        sport = self.inflight.pop(key, None)
        if sport is not None:
            self.probes.pop(sport, None)

    def is_up(self, key: TargetKey) -> bool:
        h = self.health.get(key)
        return h is None or h.up

    # ------------------------------------------------------------------ time
    def _schedule(self, key: TargetKey, at: float) -> None:
        self.due[key] = at
        self._seq += 1
        heapq.heappush(self._due_heap, (at, self._seq, key))

    def tick(self, now: float) -> float:
        """Time out overdue probes and start due ones; returns when to call again."""
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            deadline, sport = heapq.heappop(dl)
            p = self.probes.get(sport)
            if p is not None and p.deadline == deadline:
                self.stats.timeouts += 1
                if p.srv is not None:  # half-way through an HTTP exchange: close it on the backend too
                    self._send(p, [p.reset()])
                self._conclude(p, False, now, "timeout")
        heap = self._due_heap
        while heap and heap[0][0] <= now:
            at, _seq, key = heapq.heappop(heap)
            if self.due.get(key) != at:
                continue  # rescheduled or removed since
            sport = self.inflight.get(key)
            if sport is not None:  # the previous probe is still running: start once it has concluded
                self._seq += 1
                heapq.heappush(heap, (self.probes[sport].deadline, self._seq, key))
                self.due[key] = self.probes[sport].deadline
                continue
            self._start(self.targets[key], now)
        nxt = now + 1.0
        if heap:
            nxt = min(nxt, heap[0][0])
        if dl:
            nxt = min(nxt, dl[0][0])
        return nxt

    def _port(self) -> int | None:
        """A free probe source port (round robin, so a late answer never meets the next probe)."""
        if len(self.probes) >= hp.PORT_COUNT:
            return None
        while True:
            self._next_port = (self._next_port + 1) % hp.PORT_COUNT
            port = hp.PORT_BASE + self._next_port
            if port not in self.probes:
                return port

    def _start(self, t: Target, now: float) -> None:
        request = b""
        if t.check.startswith("http"):
            request = hp.http_request(t.check.partition(":")[2] or "/", f"{t.ip}:{t.port}")
        h = self.health[t.key]
        self._schedule(t.key, now + (t.interval / h.threshold if h.count else t.interval))
        sport = self._port()
        if sport is None:  # every probe port in flight: skip this round rather than decide anything
            self.stats.unsent += 1
            return
        p = Probe(t, sport, self.rng.getrandbits(32), now, now + t.timeout, request)
        self.probes[p.sport] = p
        self.inflight[t.key] = p.sport
        heapq.heappush(self._deadlines, (p.deadline, p.sport))
        if not self._send(p, [p.first()]):
            # Not sent (the switch connection is down): says nothing about the backend, so no result; the
            # next attempt follows the schedule. Otherwise an OpenFlow reconnect would take every backend
            # of this chassis out of service.
            self.probes.pop(p.sport, None)
            self.inflight.pop(t.key, None)
            self.stats.unsent += 1
            return
        self.stats.probes += 1

    def _send(self, p: Probe, segs: list[Segment]) -> bool:
        for seg in segs:
            try:
                self.send(p.target, hp.tcp_frame(hp.MONITOR_MAC, p.target.mac, seg))
            except Exception as exc:  # noqa: BLE001 - a lost probe is a timeout, not a crash
                log.debug("probe to %s:%d not sent: %s", p.target.ip, p.target.port, exc)
                return False
        return True

    # ------------------------------------------------------------------ replies
    def on_frame(self, frame: bytes, now: float, in_port: int | None = None) -> None:
        """A frame a backend sent to the monitor address (handed to the agent by pipeline/lbhealth.py).
        `in_port` (the packet-in's; None only in pure tests): the port the probe went to must have sent it,
        since another tenant's VM on this chassis may own the same IP in its own switch."""
        self.stats.frames += 1
        seg = hp.parse(frame)
        p = self.probes.get(seg.dst_port) if seg is not None and seg.dst_ip == hp.MONITOR_IP else None
        if (p is None or seg is None or (seg.src_ip, seg.src_port) != (p.target.ip, p.target.port)
                or (in_port is not None and in_port != p.target.ofport)):
            self.stats.ignored += 1
            return
        verdict, out = p.on_segment(seg)
        self._send(p, out)
        if verdict is not None:
            self._conclude(p, verdict, now, "ok" if verdict else ("reset" if seg.flags & RST else "bad_answer"))

    def _conclude(self, p: Probe, ok: bool, now: float, result: str) -> None:
        key = p.target.key
        self.probes.pop(p.sport, None)
        if self.inflight.get(key) == p.sport:
            del self.inflight[key]
        st = self.stats
        st.by_result[result] = st.by_result.get(result, 0) + 1
        if ok:
            st.ok += 1
        else:
            st.failed += 1
        h = self.health.get(key)
        if h is None:
            return
        was_doubt = h.count > 0
        if h.record(ok):
            st.verdict_changes += 1
            self.on_verdict(p.target, h.up)
        if h.count and not was_doubt:  # in doubt now: the next probe comes sooner
            self._schedule(key, min(self.due[key], p.started + p.target.interval / h.threshold))

    def status(self) -> dict:
        down = sorted(k for k, h in self.health.items() if not h.up)
        st = self.stats
        return {"targets": len(self.targets), "up": len(self.targets) - len(down), "down": len(down),
                "in_flight": len(self.probes), "probes": st.probes, "ok": st.ok, "failed": st.failed,
                "timeouts": st.timeouts, "verdict_changes": st.verdict_changes, "frames": st.frames,
                "ignored": st.ignored, "unsent": st.unsent, "by_result": dict(st.by_result),
                "down_backends": [f"{k[0]}/{k[1]}/{k[2]}/{k[3]}:{k[4]}" for k in down[:50]]}

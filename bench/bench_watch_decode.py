"""Watch decode throughput of tuplenet.store (budget: >= 50,000 events/s on one core).

1. synthetic: raw /v3/watch response lines (100 events each, realistic keys and values) -> Event objects,
   (a) decode_watch_line alone, (b) the whole Watch iterator (line splitting, dedup, batches) over a byte
   stream;
2. end-to-end against a private etcd: put N keys in 128-op txns, then watch them from the first revision
   (replay), and watch while writing N more (live).

Usage: .venv/bin/python bench/bench_watch_decode.py [--events 200000] [--per-line 100] [--e2e-keys 100000]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from tuplenet.sandbox.etcd import ETCD_BIN, EtcdServer
from tuplenet.store import Op, Store
from tuplenet.store.codec import decode_watch_line
from tuplenet.store.watch import Watch

PREFIX = "/tuplenet/"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def synthetic_lines(n_events: int, per_line: int) -> list[bytes]:
    """Watch lines as etcd's gateway writes them; every 10th event is a DELETE (no value, type set)."""
    lines, rev = [], 1000
    header = {"cluster_id": "11419661760746893010", "member_id": "11105412116194203833", "raft_term": "2"}
    for start in range(0, n_events, per_line):
        events = []
        for i in range(start, min(start + per_line, n_events)):
            rev += 1
            key = f"{PREFIX}entity_view/LS/ls{i // 1000}/lsp/p{i}"
            if i % 10 == 9:
                events.append({"type": "DELETE", "kv": {"key": b64(key), "mod_revision": str(rev)}})
                continue
            mac = f"f2:01:0a:00:{i // 256 % 256:02x}:{i % 256:02x}"
            value = f"ip=10.0.{i // 250 % 256}.{i % 250 + 2},mac={mac},chassis=hv{i % 64}"
            events.append({"kv": {"key": b64(key), "create_revision": str(rev), "mod_revision": str(rev),
                                  "version": "1", "value": b64(value)}})
        lines.append(json.dumps({"result": {"header": {**header, "revision": str(rev)}, "events": events}},
                                separators=(",", ":")).encode())
    return lines


class Best:
    """Best of several runs, by wall clock and by CPU time (CPU time is robust on a shared, busy machine)."""

    def __init__(self) -> None:
        self.wall = self.cpu = float("inf")

    def __enter__(self) -> Best:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = min(self.wall, time.perf_counter() - self._w)
        self.cpu = min(self.cpu, time.process_time() - self._c)

    def rates(self, n: int) -> str:
        return f"{n / self.wall:>10,.0f} events/s wall, {n / self.cpu:>10,.0f} events per CPU-second"


def bench_decode_lines(lines: list[bytes], n_events: int) -> str:
    plen = len(PREFIX)
    best = Best()
    for _ in range(5):
        count = 0
        with best:
            for line in lines:
                count += len(decode_watch_line(line, plen).events)
        assert count == n_events
    return best.rates(n_events)


class _Stream:
    """An HTTP response stand-in: read1() hands out the stream in 64 KiB pieces, like a socket would."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read1(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


class _Conn:
    sock = None

    def close(self) -> None:
        pass


def bench_watch_iterator(lines: list[bytes], n_events: int) -> str:
    created = json.dumps({"result": {"header": {"revision": "1"}, "created": True}}).encode()
    data = b"\n".join([created, *lines]) + b"\n"
    best = Best()
    for _ in range(5):
        store = Store("127.0.0.1:1", prefix=PREFIX)
        watch = store.watch("", 1)
        streams = [_Stream(data)]
        watch._connect = lambda streams=streams: (_Conn(), streams.pop())  # type: ignore[method-assign]
        count = 0
        with best:
            for batch in watch:
                count += len(batch.events)
                if count >= n_events:
                    break
        watch.close()
        assert count == n_events
    return best.rates(n_events)


def _keys(n: int, tag: str) -> list[Op]:
    return [Op.put(f"entity_view/LS/ls{i // 1000}/lsp/{tag}{i}",
                   f"ip=10.0.{i // 250 % 256}.{i % 250 + 2},mac=f2:01:0a:00:01:02,chassis=hv{i % 64}")
            for i in range(n)]


def _write(store: Store, ops: list[Op]) -> None:
    with ThreadPoolExecutor(4) as pool:  # concurrent txns let etcd share fsyncs
        list(pool.map(store.txn_batches, [ops[i::4] for i in range(4)]))


def _drain(watch: Watch, n: int) -> float:
    count = 0
    for batch in watch:
        count += len(batch.events)
        if count >= n:
            break
    return time.perf_counter()


def bench_end_to_end(n_keys: int) -> dict[str, float]:
    """Replay: write, then watch from the first revision. Live: watch while writing (bounded by writes)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tn-bench-") as tmp, EtcdServer(tmp) as server:
        store = Store(server.endpoint, prefix=PREFIX, timeout=30.0)
        first = store.revision() + 1
        t0 = time.perf_counter()
        _write(store, _keys(n_keys, "p"))
        out["write"] = n_keys / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with store.watch("", first) as watch:
            out["replay"] = n_keys / (_drain(watch, n_keys) - t0)
        with store.watch("", store.revision() + 1) as watch, ThreadPoolExecutor(1) as reader:
            done = reader.submit(_drain, watch, n_keys)
            t0 = time.perf_counter()
            _write(store, _keys(n_keys, "q"))
            t_written = time.perf_counter()
            t_seen = done.result()
        out["live"] = n_keys / (t_seen - t0)
        out["lag_ms"] = max(0.0, t_seen - t_written) * 1000
        store.close()
    return out


def server_version() -> str:
    out = subprocess.run([ETCD_BIN, "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--per-line", type=int, default=100)
    ap.add_argument("--e2e-keys", type=int, default=100_000, help="0 skips the etcd end-to-end run")
    args = ap.parse_args()
    lines = synthetic_lines(args.events, args.per_line)
    print(f"synthetic: {args.events} events, {args.per_line} per line, "
          f"{sum(map(len, lines)) / args.events:.0f} bytes of JSON per event")
    print(f"  decode_watch_line        {bench_decode_lines(lines, args.events)}")
    print(f"  Watch iterator (stream)  {bench_watch_iterator(lines, args.events)}")
    if args.e2e_keys:
        r = bench_end_to_end(args.e2e_keys)
        print(f"end-to-end with etcd {server_version()}: {args.e2e_keys} keys")
        print(f"  write (128-op txns, 4 threads)      {r['write']:>10,.0f} keys/s")
        print(f"  watch replay from first revision    {r['replay']:>10,.0f} events/s")
        print(f"  watch live while writing            {r['live']:>10,.0f} events/s "
              f"(last event {r['lag_ms']:.0f} ms after the last write returned)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

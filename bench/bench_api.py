"""HTTP API budgets: reads p99 with 50 concurrent clients (budget <= 50 ms) and 20 concurrent writers.

Starts a private etcd and `tuplenet-api` on free loopback ports, seeds a topology (switches with ports,
routers linked to them), then:
- reads, closed loop: 50 clients on their own keep-alive connections, each sending its next GET as soon as
  the previous answer is in (a mix of one switch, one port, a switch's port list and the router list);
- reads, paced: the same 50 clients, each at --rate requests/s with random think time (a busy dashboard
  fleet rather than a load generator);
- writes: 20 writers adding ports to one switch with IPAM at the same time; then checks no IP or port id
  is duplicated and every 201 is in etcd.
Prints figures; exits 1 if a budget is missed or a write check fails.

    .venv/bin/python bench/bench_api.py [--clients 50] [--seconds 10] [--rate 10] [--writers 20]
                                        [--writes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time

from bench_dir import bench_dir
from tuplenet.api.proc import ApiProcess
from tuplenet.control import Controller
from tuplenet.model import port_id
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.store import Store

PREFIX = "/bench-api/"
READ_BUDGET_P99 = 0.050


class Conn:
    """A minimal HTTP/1.1 keep-alive client (asyncio streams): cheap enough to run 50 in one process."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Length: {len(body)}\r\n")
        if body:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def seed(endpoint: str, switches: int, ports: int) -> list[str]:
    """Topology to read; returns the read paths the clients pick from."""
    with Store(endpoint, prefix=PREFIX) as store:
        ctl = Controller(store)
        ctl.add_router("lr0")
        paths = ["/api/v2/routers"]
        for i in range(switches):
            ctl.add_switch(f"ls{i}")
            ctl.link("lr0", f"ls{i}", f"10.0.{i}.1/24")
            for p in range(ports):
                ctl.add_switch_port(f"ls{i}", f"vm{p}", f"10.0.{i}.{p + 2}")
                paths.append(f"/api/v2/switches/ls{i}/ports/vm{p}")
            paths += [f"/api/v2/switches/ls{i}", f"/api/v2/switches/ls{i}/ports"]
        ctl.add_switch("target")
    return paths


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (and its reaped children) from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, lat: list[float], seconds: float, bad: int) -> str:
    return (f"{name}: {len(lat)} requests in {seconds:.1f} s = {len(lat) / seconds:.0f}/s; latency p50 "
            f"{statistics.median(lat) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms, max "
            f"{max(lat) * 1000:.1f} ms; non-200 answers: {bad}")


async def reads(api: ApiProcess, paths: list[str], clients: int, seconds: float, rate: float | None
                ) -> tuple[list[float], int]:
    conns = [Conn(api.port, api.token) for _ in range(clients)]
    for c in conns:
        await c.open()
    lat: list[float] = []
    bad = 0
    stop = time.perf_counter() + seconds

    async def client(c: Conn, rng: random.Random) -> None:
        nonlocal bad
        if rate:
            await asyncio.sleep(rng.uniform(0, 1 / rate))  # spread the first requests
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, _ = await c.request("GET", rng.choice(paths))
            lat.append(time.perf_counter() - t0)
            bad += status != 200
            if rate:
                await asyncio.sleep(rng.expovariate(rate))

    await asyncio.gather(*(client(c, random.Random(i)) for i, c in enumerate(conns)))
    for c in conns:
        c.close()
    return lat, bad


async def writes(api: ApiProcess, writers: int, per_writer: int) -> tuple[list[float], list[tuple[int, bytes]]]:
    import json

    conns = [Conn(api.port, api.token) for _ in range(writers)]
    for c in conns:
        await c.open()
    lat: list[float] = []
    answers: list[tuple[int, bytes]] = []
    start = asyncio.Event()

    async def writer(i: int, c: Conn) -> None:
        await start.wait()
        for k in range(per_writer):
            body = json.dumps({"name": f"w{i}-{k}", "subnet": "172.16.0.0/16"}).encode()
            t0 = time.perf_counter()
            answers.append(await c.request("POST", "/api/v2/switches/target/ports", body))
            lat.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(writer(i, c)) for i, c in enumerate(conns)]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)
    for c in conns:
        c.close()
    return lat, answers


def check_writes(endpoint: str, answers: list[tuple[int, bytes]], expected: int) -> list[str]:
    import json

    problems = []
    statuses = [s for s, _ in answers]
    if statuses.count(201) != expected:
        problems.append(f"{expected - statuses.count(201)} writes not 201: {sorted(set(statuses))}")
    granted = {d["name"]: d["ip"] for s, b in answers if s == 201 for d in [json.loads(b)]}
    with Store(endpoint, prefix=PREFIX) as store:
        ports = Controller(store).list_switch_ports("target")
    stored = {p.name: p.ip for p in ports}
    if stored != granted:
        problems.append(f"lost or changed updates: {len(granted)} answered 201, {len(stored)} stored")
    if len({port_id(ip) for ip in stored.values()}) != len(stored):
        problems.append("duplicate port ids")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each read phase")
    ap.add_argument("--rate", type=float, default=10.0, help="requests/s per client in the paced phase")
    ap.add_argument("--writers", type=int, default=20)
    ap.add_argument("--writes", type=int, default=10, help="ports each writer adds")
    ap.add_argument("--switches", type=int, default=10)
    ap.add_argument("--ports", type=int, default=20, help="ports per switch")
    opts = ap.parse_args()
    base = bench_dir("tn-bench-api-")
    failed = False
    with EtcdServer(os.path.join(base, "etcd")) as etcd:
        paths = seed(etcd.endpoint, opts.switches, opts.ports)
        api = ApiProcess(os.path.join(base, "api"), etcd.endpoint, PREFIX).start()
        try:
            print(f"tuplenet-api over etcd; {len(paths)} read paths; load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} CPUs")
            asyncio.run(reads(api, paths, opts.clients, 1.0, None))  # warm up
            pids = {"api": api.proc.pid, "etcd": etcd.proc.pid, "client": os.getpid()}
            for name, rate in (("reads, closed loop", None), (f"reads, paced {opts.rate:g}/s per client", opts.rate)):
                cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
                t0 = time.perf_counter()
                lat, bad = asyncio.run(reads(api, paths, opts.clients, opts.seconds, rate))
                took = time.perf_counter() - t0
                cpu = {k: (cpu_seconds(p) - cpu0[k]) / len(lat) * 1000 for k, p in pids.items()}
                p99 = pct(lat, 0.99)
                verdict = "OK" if p99 <= READ_BUDGET_P99 else "OVER"
                print(f"{summary(f'{name}, {opts.clients} clients', lat, took, bad)}  budget p99 "
                      f"{READ_BUDGET_P99 * 1000:.0f} ms  {verdict}")
                print("  CPU per request: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu.items()))
                failed |= bad > 0 or (rate is not None and p99 > READ_BUDGET_P99)
            t0 = time.perf_counter()
            lat, answers = asyncio.run(writes(api, opts.writers, opts.writes))
            took = time.perf_counter() - t0
            problems = check_writes(etcd.endpoint, answers, opts.writers * opts.writes)
            print(f"{summary(f'writes, {opts.writers} writers x {opts.writes} IPAM ports on one switch', lat, took, 0)}"
                  f"  correctness: {'OK (no duplicate IP or id, no lost update)' if not problems else problems}")
            failed |= bool(problems)
        finally:
            api.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Load-balancer health checks on real hosts (namespaces, userspace OVS, Geneve, real agents, guest kernels):
how long a failed backend stays in service. Budget (issue 13): removed within 2 x the check interval.

A TCP service behind a VIP on LS-A, backends b1 (hv2) and b2 (hv3), client on hv1. Each trial: a client
in its namespace connects to the VIP every 20 ms and logs (monotonic time, answer); at a random phase of
the probe cycle b1's server is killed (its kernel then resets probes and clients alike). Reported per
check interval, over the trials:
- verdict: kill -> the `communicate/lb_health/.../b1` key is in etcd (the agent's decision, written);
- outage: kill -> the last connection that failed (after it, every connection reached b2: the client's
  chassis has dropped b1 from the select group). This is what users see and what the budget is about.
- restore: server restarted -> the key is gone (rise probes).

Needs root. Usage: python bench/bench_lb_health.py [--trials 5] [--intervals 1,2] [--fall 2] [--rise 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

PREFIX = "/tuplenet/"
VIP, PORT = "10.10.1.100", 8080
VMS = {"client": ("hv1", "10.10.1.10"), "b1": ("hv2", "10.10.1.2"), "b2": ("hv3", "10.10.1.3")}
KEY_B1 = "communicate/lb_health/LS/LS-A/web/10.10.1.2:8080"

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(256)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[1].encode() + b"\\n"); c.close()
"""

# Connect every 20 ms until killed; one line per attempt: monotonic time, then the answer or ERR.
CLIENT = """
import socket, sys, time
vip, port = sys.argv[1], int(sys.argv[2])
while True:
    t = time.monotonic()
    try:
        c = socket.create_connection((vip, port), timeout=1)
        ans = c.recv(64).decode().strip() or "EMPTY"; c.close()
    except OSError as exc:
        ans = "ERR:" + type(exc).__name__
    print(f"{t:.4f} {ans}", flush=True)
    time.sleep(max(0.0, 0.02 - (time.monotonic() - t)))
"""


def tpctl(sb: NetnsSandbox, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", PREFIX, *args],
                   check=True, capture_output=True, timeout=30)


def kill(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=10)


def trial(sb: NetnsSandbox, store: Store, interval: int, log: str) -> dict[str, float]:
    server = sb.spawn("b1", [sys.executable, "-c", SERVER, "b1", str(PORT)])
    wait_for(lambda: store.get(KEY_B1) is None, timeout=30, interval=0.05, what="b1 in service")
    if os.path.exists(log):
        os.unlink(log)
    client = sb.spawn("client", [sys.executable, "-c", CLIENT, VIP, str(PORT)], logfile=log)
    try:
        time.sleep(interval + random.uniform(0, interval))  # a random phase of the probe cycle
        t_kill = time.monotonic()
        kill(server)
        wait_for(lambda: store.get(KEY_B1) is not None, timeout=10 * interval, interval=0.005, what="verdict")
        t_key = time.monotonic()
        time.sleep(1.0 + interval)  # long enough to see that every connection now reaches b2
    finally:
        kill(client)
    fails, other = [], 0
    for line in open(log):
        parts = line.split()
        if len(parts) == 2 and float(parts[0]) >= t_kill and parts[1] != "b2":
            fails.append(float(parts[0]))
            other += parts[1] not in ("b1", "ERR:ConnectionRefusedError")  # not b1's reset: load, loss
    server = sb.spawn("b1", [sys.executable, "-c", SERVER, "b1", str(PORT)])
    t_back = time.monotonic()
    wait_for(lambda: store.get(KEY_B1) is None, timeout=10 * interval, interval=0.005, what="restored")
    restore = time.monotonic() - t_back
    kill(server)
    return {"verdict": t_key - t_kill, "outage": (max(fails) - t_kill) if fails else 0.0,
            "failed_connections": len(fails), "failed_otherwise": other, "restore": restore}


def summary(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f} s, max {max(xs):.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--intervals", default="1,2")
    ap.add_argument("--rise", type=int, default=2)
    ap.add_argument("--fall", type=int, default=2)
    a = ap.parse_args()
    sb = NetnsSandbox(workdir="/tmp/tn-bench-lbhc", name_prefix="tnl")
    results: dict[int, list[dict[str, float]]] = {}
    try:
        sb.up(hosts=3, prefix=PREFIX)
        for args in [("ls", "add", "LS-A"), ("lr", "add", "R1"), ("lr", "link", "R1", "LS-A", "10.10.1.1/24")]:
            tpctl(sb, *args)
        for name, (host, ip) in VMS.items():
            tpctl(sb, "lsp", "add", "LS-A", name, ip)
            sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip), gateway="10.10.1.1", iface_id=name)
        b2 = sb.spawn("b2", [sys.executable, "-c", SERVER, "b2", str(PORT)])
        store = Store(sb.etcd_endpoint, prefix=PREFIX)
        log = os.path.join(sb.workdir, "client.log")
        for n, interval in enumerate(int(x) for x in a.intervals.split(",")):
            if n:
                tpctl(sb, "lb", "del", "ls", "LS-A", "web")
            tpctl(sb, "lb", "add", "ls", "LS-A", "web", f"{VIP}:{PORT}", f"10.10.1.2:{PORT},10.10.1.3:{PORT}",
                  "check=tcp", f"interval={interval}", f"rise={a.rise}", f"fall={a.fall}")
            results[interval] = [trial(sb, store, interval, log) for _ in range(a.trials)]
        kill(b2)
        store.close()
    finally:
        sb.down()
    print(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    ok = True
    for interval, rs in results.items():
        verdict, outage = [r["verdict"] for r in rs], [r["outage"] for r in rs]
        within = max(outage) <= 2 * interval and max(verdict) <= 2 * interval
        ok &= within
        print(f"interval {interval} s (rise {a.rise}, fall {a.fall}), {len(rs)} trials: verdict {summary(verdict)}; "
              f"client-visible outage {summary(outage)}; restore {summary([r['restore'] for r in rs])}; "
              f"failed connections per trial {statistics.median([r['failed_connections'] for r in rs]):.0f} "
              f"-> budget 2 x interval {'holds' if within else 'MISSED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""tpcnm figures with Docker itself (Debian's dockerd on two namespace hosts, real agents, OVS, etcd):

1. `docker run -d` wall time for a container on a tuplenet network (docker's own work included: image
   layer, runc, plus our CreateEndpoint, the wait for the agent's readiness mark in Join, ...).
2. Container created (`docker run` starts) -> first successful ping to it from a container on the other host:
   median over the samples. The underlay is warmed first (the userspace datapath drops a tunnel's first
   packet while it resolves the remote tunnel IP, which is not the driver's doing).
3. The driver's own share: CreateEndpoint + Join (incl. readiness wait) + DeleteEndpoint over its socket.

Needs root, docker.io and busybox-static. Usage: python bench/bench_cnm.py [--samples 20] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import time

from first_ping import first_ping as ping_from
from tuplenet.cnm.lab import IMAGE, Dockerd, build_image_tar, docker_missing, start_driver
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import stop_pid
from tuplenet.store import Store

PREFIX = "/tuplenet/"
WORKDIR = "/tmp/tn-bench-cnm"


def ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {"median_ms": round(statistics.median(s) * 1000, 1), "p90_ms": round(s[int(0.9 * (len(s) - 1))] * 1000, 1),
            "min_ms": round(s[0] * 1000, 1), "max_ms": round(s[-1] * 1000, 1)}


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def plugin_call(sock: str, method: str, body: dict) -> dict:
    c = UnixHTTP(sock)
    try:
        c.request("POST", f"/{method}", json.dumps(body))
        answer = json.loads(c.getresponse().read())
    finally:
        c.close()
    if "Err" in answer:
        raise RuntimeError(f"{method}: {answer['Err']}")
    return answer


def first_ping(pid: int, ip: str, t0: float, timeout: float = 30.0) -> float:
    return ping_from(["-t", str(pid), "-n"], ip, t0, timeout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if reason := docker_missing():
        raise SystemExit(reason)
    made = [p for p in ("/run/docker", "/run/containerd") if not os.path.exists(p)]
    sb = NetnsSandbox(workdir=WORKDIR, name_prefix="tnbd")
    drivers, dockerds, store = [], [], None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.wait_agents()
        store = Store(sb.etcd_endpoint, PREFIX)
        Controller(store).add_router("R1")
        tar = build_image_tar(WORKDIR)
        socks = {}
        for host in ("hv1", "hv2"):
            plugins = os.path.join(sb.host_dir(host), "plugins")
            os.makedirs(plugins, exist_ok=True)
            socks[host] = os.path.join(plugins, "tuplenet.sock")
            drivers.append(start_driver(sb, host, socks[host], PREFIX))
            d = Dockerd(sb, host, plugins)
            dockerds.append(d)
            d.cli("import", "-c", 'CMD ["/bin/sh"]', tar, IMAGE)
            d.cli("network", "create", "-d", "tuplenet", "--ipam-driver", "tuplenet", "--subnet", "10.66.0.0/16",
                  "--gateway", "10.66.0.1", "-o", "switch=web", "-o", "router=R1", "web")
        d1, d2 = dockerds
        d1.cli("run", "-d", "--name", "ref", "--network", "web", "--ip", "10.66.0.10", IMAGE, "sleep", "3600")
        ref = d1.pid_of("ref")
        d2.cli("run", "-d", "--name", "warm", "--network", "web", "--ip", "10.66.0.11", IMAGE, "sleep", "3600")
        first_ping(ref, "10.66.0.11", time.perf_counter())  # warms the underlay between the hosts

        runs, pings = [], []
        for i in range(a.samples):
            ip = f"10.66.1.{i + 1}"
            t0 = time.perf_counter()
            d2.cli("run", "-d", "--name", f"s{i}", "--network", "web", "--ip", ip, IMAGE, "sleep", "3600")
            runs.append(time.perf_counter() - t0)
            pings.append(first_ping(ref, ip, t0))
            d2.cli("rm", "-f", f"s{i}")

        nid = d2.cli("network", "inspect", "-f", "{{.Id}}", "web").stdout.strip()
        creates, joins, deletes = [], [], []
        for i in range(a.samples):
            ids = {"NetworkID": nid, "EndpointID": f"{i:064x}"}
            t = time.perf_counter()
            plugin_call(socks["hv2"], "NetworkDriver.CreateEndpoint",
                        {**ids, "Interface": {"Address": f"10.66.2.{i + 1}/16"}, "Options": {}})
            creates.append(time.perf_counter() - t)
            t = time.perf_counter()
            plugin_call(socks["hv2"], "NetworkDriver.Join", {**ids, "SandboxKey": "", "Options": {}})
            joins.append(time.perf_counter() - t)
            t = time.perf_counter()
            plugin_call(socks["hv2"], "NetworkDriver.DeleteEndpoint", ids)
            deletes.append(time.perf_counter() - t)
        out = {"samples": a.samples, "load_avg_1m": os.getloadavg()[0], "docker_run": ms(runs),
               "created_to_first_ping_other_host": ms(pings), "driver_create_endpoint": ms(creates),
               "driver_join_incl_readiness": ms(joins), "driver_delete_endpoint": ms(deletes)}
        if a.json:
            print(json.dumps(out))
        else:
            for k, v in out.items():
                print(f"{k:34} {v}")
    finally:
        for d in dockerds:
            d.stop()
        for p in drivers:
            stop_pid(p.pid)
        if store is not None:
            store.close()
        sb.down()
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()

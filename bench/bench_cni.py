"""tpcni figures on real hosts (namespaces, userspace OVS, Geneve, real agents, real etcd):

1. ADD wall time of the plugin process (budget: median <= 150 ms), including the wait for the agent's
   readiness mark; DEL wall time (budget: median <= 100 ms).
2. Container created (its network namespace exists, the runtime calls ADD) -> first successful ping to a
   container on another host: median over the samples.
   Also the CPU time (user+sys) of the plugin and the tools it ran: on a busy machine wall time is mostly
   waiting for a CPU, CPU time is not.
3. The same with `tpcni serve` on hv1 (served_*): the plugin forwards to the server, which has every module
   loaded; the CPU figure then counts only the forwarding process.
4. The floor: VERSION (interpreter start + our imports, no I/O) and `nsenter true` (the runtime-side cost
   of running the plugin inside the host namespace, included in 1).

The plugin runs as deployed: with its bytecode cached (PYTHONPYCACHEPREFIX under the work dir, warmed once).
With --podman, 2. is also measured with the real runtime: `podman run -d` of a busybox container on hv1 (its
start included) -> its first successful ping of a podman container on hv2.

Needs root. Usage: python bench/bench_cni.py [--samples 20] [--podman] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from first_ping import first_ping as ping_from
from tuplenet.cni.runtime import Runtime, write_launcher
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.store import Store

PREFIX = "/tuplenet/"
WORKDIR = "/tmp/tn-bench-cni"


def ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {"median_ms": round(statistics.median(s) * 1000, 1), "p90_ms": round(s[int(0.9 * (len(s) - 1))] * 1000, 1),
            "min_ms": round(s[0] * 1000, 1), "max_ms": round(s[-1] * 1000, 1)}


def first_ping(netns: str, ip: str, t0: float, timeout: float = 20.0) -> float:
    return ping_from(["--net=" + netns], ip, t0, timeout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--podman", action="store_true", help="also time podman run -> first ping across hosts")
    a = ap.parse_args()
    sb = NetnsSandbox(workdir=WORKDIR, name_prefix="tnbc")
    made: list[str] = []
    store = None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.wait_agents()
        store = Store(sb.etcd_endpoint, PREFIX)
        ctl = Controller(store)
        ctl.add_switch("LS-A")
        ctl.add_router("R1")
        ctl.link("R1", "LS-A", "10.10.1.1/24")
        bindir = os.path.join(WORKDIR, "cni-bin")
        write_launcher(bindir, sys.executable)
        env = {"PYTHONPYCACHEPREFIX": os.path.join(WORKDIR, "pyc")}
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # deployed code has its bytecode cached

        def runtime(host: str) -> Runtime:
            return Runtime([bindir, "/usr/lib/cni"], prefix=["nsenter", f"--net=/run/netns/{sb.ns(host)}"], env=env)

        def conf(host: str) -> dict:
            return {"cniVersion": "1.0.0", "name": "tn", "type": "tpcni", "switch": "LS-A", "subnet": "10.10.1.0/24",
                    "etcdEndpoints": sb.agent_etcd_endpoint, "ovsdbSocket": os.path.join(sb.host_dir(host), "db.sock")}

        def netns(tag: str) -> str:
            name = f"tnbc-c{tag}"
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
            return f"/run/netns/{name}"

        rt1, rt2 = runtime("hv1"), runtime("hv2")
        runs = [rt1.invoke("tpcni", "VERSION", {"cniVersion": "1.0.0"}) for _ in range(args_n(a) + 1)][1:]
        version, version_cpu = [r.seconds for r in runs], [r.cpu_seconds for r in runs]
        imports_cpu = [import_cpu({**os.environ, **env}) for _ in range(args_n(a))]
        ns_floor = []
        for _ in range(args_n(a)):
            t = time.perf_counter()
            subprocess.run(["nsenter", f"--net=/run/netns/{sb.ns('hv1')}", "true"], check=True)
            ns_floor.append(time.perf_counter() - t)
        peer_ns = netns("peer")
        peer = rt2.invoke("tpcni", "ADD", conf("hv2"), "peer", peer_ns, "eth0")
        assert peer.status == 0, peer.stdout
        peer_ip = peer.json["ips"][0]["address"].split("/")[0]
        warm_ns = netns("warm")  # first run compiles and caches the bytecode
        assert rt1.invoke("tpcni", "ADD", conf("hv1"), "warm", warm_ns, "eth0").status == 0
        assert rt1.invoke("tpcni", "DEL", conf("hv1"), "warm", warm_ns, "eth0").status == 0

        adds, dels, pings, add_cpu, del_cpu = [], [], [], [], []
        for i in range(a.samples):
            cns = netns(str(i))
            t0 = time.perf_counter()
            r = rt1.invoke("tpcni", "ADD", conf("hv1"), f"b{i}", cns, "eth0")
            assert r.status == 0, r.stdout
            pings.append(first_ping(cns, peer_ip, t0))
            adds.append(r.seconds)
            add_cpu.append(r.cpu_seconds)
        for i in range(a.samples):
            r = rt1.invoke("tpcni", "DEL", conf("hv1"), f"b{i}", f"/run/netns/tnbc-c{i}", "eth0")
            assert r.status == 0, r.stdout
            dels.append(r.seconds)
            del_cpu.append(r.cpu_seconds)
        served = served_runs(sb, bindir, rt1, conf("hv1"), netns, peer_ip, a.samples)
        if a.podman:
            pods = podman_first_ping(sb, bindir, env, a.samples)
        out = {"samples": a.samples, "load_avg_1m": os.getloadavg()[0], "add": ms(adds), "del": ms(dels),
               "add_cpu": ms(add_cpu), "del_cpu": ms(del_cpu), "created_to_first_ping_other_host": ms(pings),
               "version_floor": ms(version), "version_cpu": ms(version_cpu),
               "imports_cpu_python_plugin_and_control": ms(imports_cpu), "nsenter_floor": ms(ns_floor)}
        for k, v in served.items():
            out[f"served_{k}"] = ms(v)
        if a.podman:
            out["podman_run_to_first_ping_other_host"] = ms(pods)
        if a.json:
            print(json.dumps(out))
        else:
            for k, v in out.items():
                print(f"{k:34} {v}")
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if store is not None:
            store.close()
        sb.down()


def served_runs(sb: NetnsSandbox, bindir: str, rt: Runtime, conf: dict, netns: Callable[[str], str], peer_ip: str,
                samples: int) -> dict[str, list[float]]:
    """The same ADD / first ping / DEL with `tpcni serve` running on hv1 (the plugin only forwards)."""
    sock = os.path.join(WORKDIR, "tpcni.sock")
    server = subprocess.Popen(["nsenter", f"--net=/run/netns/{sb.ns('hv1')}", os.path.join(bindir, "tpcni"), "serve",
                               "--socket", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **rt.env})
    conf = {**conf, "serverSocket": sock}
    out: dict[str, list[float]] = {"add": [], "add_cpu": [], "del": [], "del_cpu": [], "created_to_first_ping": []}
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(samples):
            cns = netns(f"s{i}")
            t0 = time.perf_counter()
            r = rt.invoke("tpcni", "ADD", conf, f"s{i}", cns, "eth0")
            assert r.status == 0, r.stdout
            out["created_to_first_ping"].append(first_ping(cns, peer_ip, t0))
            out["add"].append(r.seconds)
            out["add_cpu"].append(r.cpu_seconds)
        for i in range(samples):
            r = rt.invoke("tpcni", "DEL", conf, f"s{i}", f"/run/netns/tnbc-cs{i}", "eth0")
            assert r.status == 0, r.stdout
            out["del"].append(r.seconds)
            out["del_cpu"].append(r.cpu_seconds)
    finally:
        server.kill()
        server.wait()
    return out


def import_cpu(env: dict[str, str]) -> float:
    """CPU time of a Python that imports what ADD imports (plugin, control layer, store) and stops."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import tuplenet.cni.main, tuplenet.cni.plugin, tuplenet.control, "
                    "tuplenet.store.security"], check=True, env=env)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def podman_first_ping(sb: NetnsSandbox, bindir: str, env: dict[str, str], samples: int) -> list[float]:
    from tuplenet.cni.podmanlab import IMAGE, PodmanHost, build_rootfs_tar

    workdir = os.path.join(WORKDIR, "podman")
    os.makedirs(workdir, exist_ok=True)
    tar = build_rootfs_tar(workdir)
    hosts = {h: PodmanHost(sb, h, workdir, bindir, {"tn": ("LS-A", "10.10.1.0/24")}, PREFIX, env)
             for h in ("hv1", "hv2")}
    out: list[float] = []
    try:
        for p in hosts.values():
            p("import", "--change", 'CMD ["/bin/sh"]', tar, IMAGE)
        hosts["hv2"]("run", "-d", "--name", "target", IMAGE, "sleep", "3600")
        target = hosts["hv2"].ip("target", "tn")
        # The loop lives in the container and starts with it: the first reply ends it.
        script = f"while ! ping -c1 -W1 {target} >/dev/null; do :; done"
        for i in range(samples):
            t0 = time.perf_counter()
            hosts["hv1"]("run", "--name", f"p{i}", IMAGE, "sh", "-c", script)
            out.append(time.perf_counter() - t0)
            hosts["hv1"]("rm", "-f", "-t0", f"p{i}")
    finally:
        for p in hosts.values():
            p.cleanup()
    return out


def args_n(a: argparse.Namespace) -> int:
    return max(5, a.samples)


if __name__ == "__main__":
    main()

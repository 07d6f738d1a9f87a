"""Real-host figures (namespaces, userspace OVS, Geneve, real agents):

1. TCP throughput VM→VM across two hosts through TupleNet's flows and a Geneve tunnel, as a ratio to the
   same kind of VMs on one plain userspace-OVS L2 bridge (actions=NORMAL, no tunnel), measured in one run.
2. Time from `tpctl lsp add` + VM creation to the VM's first successful ping of another host's VM.

Needs root. Usage: python bench/bench_e2e.py [--samples 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from tuplenet.sandbox.netns import NetnsSandbox, default_mac
from tuplenet.sandbox.netns_util import ifname
from tuplenet.sandbox.procs import wait_for

PREFIX = "/tuplenet/"


def tpctl(sb: NetnsSandbox, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", sb.etcd_endpoint, "-p", PREFIX, *args],
                   check=True, capture_output=True, timeout=30)


def iperf(sb: NetnsSandbox, client: str, server: str, ip: str, seconds: int) -> float:
    srv = sb.spawn(server, ["iperf3", "-s", "-1", "-B", ip])
    try:
        wait_for(lambda: ":5201" in sb.exec(server, ["ss", "-ltn"], check=False).stdout, timeout=10, what="iperf3")
        out = sb.exec(client, ["iperf3", "-c", ip, "-t", str(seconds), "-J"], timeout=seconds + 30).stdout
    finally:
        srv.kill()
        srv.wait()
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    sb = NetnsSandbox(workdir="/tmp/tn-bench-e2e", name_prefix="tnb")
    try:
        sb.up(hosts=3, prefix=PREFIX)
        for args in [("ls", "add", "LS-A"), ("lsp", "add", "LS-A", "vm1", "10.10.1.2"),
                     ("lsp", "add", "LS-A", "vm2", "10.10.1.3")]:
            tpctl(sb, *args)
        sb.add_vm("vm1", host="hv1", ip="10.10.1.2/24", mac=default_mac("10.10.1.2"))
        sb.add_vm("vm2", host="hv2", ip="10.10.1.3/24", mac=default_mac("10.10.1.3"))
        wait_for(lambda: sb.exec("vm1", ["ping", "-c", "1", "-W", "1", "10.10.1.3"], check=False).returncode == 0,
                 timeout=30, what="vm1 -> vm2")
        # Baseline: two VMs on one host, on a plain bridge with the same datapath type, no tunnel.
        sb.add_vm("pa", host="hv3", ip="10.99.0.1/24")
        sb.add_vm("pb", host="hv3", ip="10.99.0.2/24")
        sb.ovs("hv3", "ovs-vsctl", "add-br", "br-plain", "--", "set", "bridge", "br-plain", "datapath_type=netdev")
        for vm in ("pa", "pb"):
            port = ifname(sb.prefix, vm)
            sb.ovs("hv3", "ovs-vsctl", "del-port", "br-int", port, "--", "add-port", "br-plain", port)
        sb.ovs("hv3", "ovs-ofctl", "add-flow", "br-plain", "actions=NORMAL")
        wait_for(lambda: sb.exec("pa", ["ping", "-c", "1", "-W", "1", "10.99.0.2"], check=False).returncode == 0,
                 timeout=30, what="baseline ping")
        tn = iperf(sb, "vm1", "vm2", "10.10.1.3", a.seconds)
        plain = iperf(sb, "pa", "pb", "10.99.0.2", a.seconds)
        print(f"TCP vm1@hv1 -> vm2@hv2 through TupleNet + Geneve: {tn:.0f} Mbit/s; plain OVS L2 bridge, one host: "
              f"{plain:.0f} Mbit/s; ratio {tn / plain:.2f}")
        times = []
        for i in range(a.samples):
            name, ip = f"n{i}", f"10.10.1.{10 + i}"
            t0 = time.perf_counter()
            tpctl(sb, "lsp", "add", "LS-A", name, ip)
            sb.add_vm(name, host="hv2", ip=f"{ip}/24", mac=default_mac(ip))
            wait_for(lambda n=name: sb.exec(n, ["ping", "-c", "1", "-W", "0.2", "10.10.1.2"],
                                            check=False).returncode == 0, timeout=30, interval=0.0,
                     what=f"{name} first ping")
            times.append(time.perf_counter() - t0)
            sb.del_vm(name)
        print(f"tpctl lsp add + VM creation -> first successful ping ({a.samples} samples): median "
              f"{statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s")
    finally:
        sb.down()


if __name__ == "__main__":
    main()

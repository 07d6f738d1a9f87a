"""`make demo`: three real hosts (namespaces, userspace OVS, Geneve), the 0.3 tutorial topology built with
tpctl, then pings within a switch and across the router between hosts, one TCP transfer, an edge with SNAT
through which a VM fetches a page from the outside, and a drawing.

    python -m tuplenet.sandbox.demo [--keep] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from .netns import NetnsSandbox, default_mac
from .procs import wait_for

PREFIX = "/tuplenet/"
VMS = [  # name, host, switch, ip
    ("vm1", "hv1", "LS-A", "10.10.1.2"),
    ("vm2", "hv2", "LS-A", "10.10.1.3"),
    ("vm3", "hv3", "LS-B", "10.10.2.2"),
    ("vm4", "hv2", "LS-B", "10.10.2.3"),
]
GATEWAYS = {"LS-A": "10.10.1.1", "LS-B": "10.10.2.1"}


class Demo:
    def __init__(self, workdir: str, name_prefix: str = "tn") -> None:
        self.sb = NetnsSandbox(workdir=workdir, name_prefix=name_prefix)
        self.t0 = time.monotonic()

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {msg}", flush=True)

    def tpctl(self, *args: str) -> str:
        cmd = [sys.executable, "-m", "tuplenet.cli.tpctl", "-e", self.sb.etcd_endpoint, "-p", PREFIX, *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"tpctl {' '.join(args)} failed: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout.strip()

    def build(self) -> None:
        self.say("building the tutorial topology with tpctl: LS-A, LS-B behind LR-central")
        steps = [("ls", "add", "LS-A"), ("ls", "add", "LS-B"), ("lr", "add", "LR-central"),
                 ("lr", "link", "LR-central", "LS-A", "10.10.1.1/24"),
                 ("lr", "link", "LR-central", "LS-B", "10.10.2.1/24")]
        steps += [("lsp", "add", ls, name, ip) for name, _, ls, ip in VMS]
        for args in steps:
            print(f"         tpctl {' '.join(args)}  ->  {self.tpctl(*args)}", flush=True)
        for name, host, ls, ip in VMS:
            self.sb.add_vm(name, host=host, ip=f"{ip}/24", mac=default_mac(ip), gateway=GATEWAYS[ls],
                           iface_id=name)
        self.say("VMs attached: " + ", ".join(f"{n}@{h} ({ip})" for n, h, _, ip in VMS))

    def ping(self, src: str, dst: str, what: str) -> float:
        def ok() -> bool:
            r = self.sb.exec(src, ["ping", "-c", "1", "-W", "1", dst], check=False, timeout=10)
            return r.returncode == 0

        wait_for(ok, timeout=30, interval=0.2, what=f"{src} to reach {dst}")
        r = self.sb.exec(src, ["ping", "-c", "5", "-i", "0.2", "-W", "2", dst], check=False, timeout=20)
        summary = [ln for ln in r.stdout.splitlines() if "packet loss" in ln or "rtt" in ln]
        self.say(f"ping {src} -> {dst} ({what}): " + " | ".join(s.strip() for s in summary))
        if r.returncode != 0:
            raise RuntimeError(f"ping {src} -> {dst} lost packets:\n{r.stdout}")
        return 0.0

    def tcp(self, client: str, server: str, server_ip: str) -> None:
        srv = self.sb.spawn(server, ["iperf3", "-s", "-1", "-B", server_ip])
        try:
            wait_for(lambda: self.sb.exec(server, ["ss", "-ltn"], check=False).stdout.count(":5201") > 0,
                     timeout=10, what="iperf3 server")
            r = self.sb.exec(client, ["iperf3", "-c", server_ip, "-t", "3", "-f", "m"], check=False, timeout=30)
        finally:
            srv.terminate()
            srv.wait(timeout=5)
        line = next((ln for ln in r.stdout.splitlines() if "receiver" in ln), r.stdout.strip()[-200:])
        self.say(f"TCP {client} -> {server} ({server_ip}) through router and tunnel: {' '.join(line.split()[4:8])}")
        if r.returncode != 0:
            raise RuntimeError(f"iperf3 failed:\n{r.stdout}\n{r.stderr}")

    def edge(self) -> None:
        """An edge on hv2 (gateway agent, pinned LR-edge, SNAT) and the outside behind it; vm1 fetches a page
        from the outside's server, which sees only the SNAT address."""
        from . import netns_outside as out

        self.say("adding an edge on hv2: GATEWAY=1 agent, LR-edge pinned there, LS-out patched to br-ext, SNAT")
        self.sb.agent_stop("hv2")
        self.sb.agent_start("hv2", {"GATEWAY": "1"})
        for args in out.edge_steps("hv2"):
            print(f"         tpctl {' '.join(args)}  ->  {self.tpctl(*args)}", flush=True)
        out.add_outside(self.sb, "hv2")
        srv = out.serve_http(self.sb)
        url = f"http://{out.INTERNET_IP}/"
        try:
            def fetch() -> str | None:
                try:
                    return out.http_get(self.sb, "vm1", url, timeout=2)
                except Exception:  # noqa: BLE001 - retried until the edge's flows and ARP are in
                    return None

            body = wait_for(fetch, timeout=30, interval=0.3, what=f"vm1 to fetch {url}")
        finally:
            srv.terminate()
            srv.wait(timeout=5)
        log = open(os.path.join(self.sb.workdir, "outside-http.log")).read().splitlines()
        seen = next((ln.split(" ", 1)[0] for ln in log if "GET /" in ln), "?")
        self.say(f"vm1 fetched {url} through the edge: {body.strip()!r}; the outside saw client {seen} (SNAT)")

    def draw(self, outdir: str) -> None:
        """The topology as etcd holds it, drawn by `tpctl graph` (text, and a PNG when Graphviz is there)."""
        self.say("topology (tpctl graph):\n" + "\n".join("         " + ln for ln in self.tpctl("graph").splitlines()))
        if shutil.which("dot"):
            os.makedirs(outdir, exist_ok=True)
            png = os.path.join(outdir, "topology.png")
            self.tpctl("graph", png)
            self.say(f"graphviz drawing (tpctl graph {png}): {png}")

    def run(self, keep: bool, outdir: str) -> int:
        self.say("bringing up 3 hosts (namespaces, userspace OVS, Geneve underlay), etcd and agents")
        self.sb.up(hosts=3, prefix=PREFIX)
        self.say(f"sandbox up; etcd at {self.sb.etcd_endpoint}")
        self.build()
        self.ping("vm1", "10.10.1.3", "same switch, hv1 -> hv2 over Geneve")
        self.ping("vm1", "10.10.2.2", "across LR-central, hv1 -> hv3")
        self.ping("vm3", "10.10.1.1", "the router's far interface")
        self.tcp("vm1", "vm3", "10.10.2.2")
        self.edge()
        self.draw(outdir)
        self.say("demo finished: TupleNet switched and routed real traffic between three hosts")
        if keep:
            print("\nThe sandbox stays up. Try:\n"
                  "  tuplenet sandbox exec vm1 -- ping -c 3 10.10.2.3\n"
                  f"  tpctl -e {self.sb.etcd_endpoint} -p {PREFIX} lsp show LS-A\n"
                  "  tuplenet sandbox exec hv1 -- ovs-ofctl -O OpenFlow15 dump-flows br-int\n"
                  "  tuplenet sandbox down        # remove everything\n")
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tuplenet-demo", description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up for exploration")
    ap.add_argument("--workdir", default="/tmp/tuplenet-sandbox")
    ap.add_argument("--out", default="build/demo", help="where the topology drawing goes")
    ap.add_argument("--name-prefix", default="tn", help="prefix of the sandbox's namespaces and links")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces)", file=sys.stderr)
        return 1
    demo = Demo(a.workdir, a.name_prefix)
    ok = False
    try:
        demo.run(a.keep, a.out)
        ok = True
    except Exception as exc:  # noqa: BLE001 - report and clean up
        demo.say(f"FAILED: {exc}")
        return 1
    finally:
        if not (a.keep and ok):
            demo.sb.down(keep_files=not ok)
            demo.say("sandbox removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

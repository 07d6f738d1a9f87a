"""Docker itself with tpcnm: Debian's dockerd on two namespace hosts, `docker network create -d tuplenet`,
containers from a local busybox image ping each other across the hosts and through a router.

How dockerd runs in a sandbox host (own data, sockets, mount namespace for plugin discovery): cnm/lab.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from cnm_helpers import PREFIX

from conftest import e2e_skip_reason
from tuplenet.cnm.lab import IMAGE, Dockerd, build_image_tar, docker_missing, start_driver
from tuplenet.control import Controller
from tuplenet.sandbox.netns import NetnsSandbox
from tuplenet.sandbox.procs import stop_pid, wait_for
from tuplenet.store import Store

pytestmark = pytest.mark.e2e
HOSTS = ("hv1", "hv2")


class Cluster:
    def __init__(self, sb: NetnsSandbox) -> None:
        self.sb = sb
        self.ctl = Controller(Store(sb.etcd_endpoint, prefix=PREFIX))
        self.drivers: dict[str, subprocess.Popen[bytes]] = {}
        self.dockerds: dict[str, Dockerd] = {}


@pytest.fixture(scope="module")
def cluster_docker() -> Iterator[Cluster]:
    if reason := e2e_skip_reason() or docker_missing():
        pytest.skip(reason)
    made = [p for p in ("/run/docker", "/run/containerd") if not os.path.exists(p)]
    sb = NetnsSandbox(workdir=f"/tmp/tn-dk-{os.getpid()}", name_prefix="cnmdk")
    c = None
    try:
        sb.up(hosts=2, prefix=PREFIX)
        sb.wait_agents()
        c = Cluster(sb)
        c.ctl.add_router("R1")
        tar = build_image_tar(sb.workdir)
        for host in HOSTS:
            plugins = os.path.join(sb.host_dir(host), "plugins")
            os.makedirs(plugins, exist_ok=True)
            c.drivers[host] = start_driver(sb, host, os.path.join(plugins, "tuplenet.sock"), PREFIX)
            c.dockerds[host] = Dockerd(sb, host, plugins)
            c.dockerds[host].cli("import", "-c", 'CMD ["/bin/sh"]', tar, IMAGE)
        yield c
    finally:
        if c:
            for d in c.dockerds.values():
                d.stop()
            for drv in c.drivers.values():
                stop_pid(drv.pid)
        sb.down()
        for p in made:
            shutil.rmtree(p, ignore_errors=True)


def test_two_hosts_ping_across_and_through_a_router(cluster_docker: Cluster) -> None:
    c = cluster_docker
    ips = {}
    for host in HOSTS:
        d = c.dockerds[host]
        # the tuplenet IPAM driver: both daemons draw from one set of reservations in etcd
        d.cli("network", "create", "-d", "tuplenet", "--ipam-driver", "tuplenet", "--subnet", "10.66.0.0/24",
              "--gateway", "10.66.0.1", "-o", "switch=dnet", "-o", "router=R1", "dnet")
        assert d.cli("network", "inspect", "-f", "{{.Driver}} {{.Scope}}", "dnet").stdout.split() == ["tuplenet",
                                                                                                      "local"]
        t0 = time.monotonic()
        d.cli("run", "-d", "--name", f"c-{host}", "--network", "dnet", IMAGE, "sleep", "600")
        ips[host] = d.cli("inspect", "-f", "{{.NetworkSettings.Networks.dnet.IPAddress}}", f"c-{host}").stdout.strip()
        print(f"docker run on {host}: {time.monotonic() - t0:.2f}s, address {ips[host]}")
    assert (ips["hv1"], ips["hv2"]) == ("10.66.0.2", "10.66.0.3")
    ports = {p.name: p for p in c.ctl.list_switch_ports("dnet")}
    assert {p.chassis for n, p in ports.items() if n != "dnet_to_R1"} == {"hv1", "hv2"}

    d1, d2 = c.dockerds["hv1"], c.dockerds["hv2"]
    addr = d1.cli("exec", "c-hv1", "ip", "addr", "show", "eth0").stdout
    assert f"inet {ips['hv1']}/24" in addr and "mtu 1400" in addr
    assert "default via 10.66.0.1" in d1.cli("exec", "c-hv1", "ip", "route").stdout
    t0 = time.monotonic()
    r = d1.cli("exec", "c-hv1", "ping", "-c", "3", "-W", "2", ips["hv2"], check=False)
    assert r.returncode == 0, r.stdout
    print(f"first ping hv1 -> hv2: {time.monotonic() - t0:.2f}s for 3 packets")
    assert d1.cli("exec", "c-hv1", "ping", "-c", "1", "-W", "2", "10.66.0.1", check=False).returncode == 0

    # TCP across hosts (container checksums are complete on the userspace datapath)
    d2.cli("exec", "-d", "c-hv2", "httpd", "-f", "-p", "8080", "-h", "/www")
    page = wait_for(lambda: d1.cli("exec", "c-hv1", "wget", "-q", "-O", "-",  # (busybox wget -T segfaults)
                                   f"http://{ips['hv2']}:8080/", check=False).stdout, timeout=20, what="http")
    assert page == "hello from tuplenet\n"

    # a second network on hv2 behind the same router: reached from hv1 through R1
    d2.cli("network", "create", "-d", "tuplenet", "--subnet", "10.67.1.0/24", "--gateway", "10.67.1.1",
           "-o", "switch=dnet2", "-o", "router=R1", "dnet2")  # docker's own IPAM is fine on one host
    d2.cli("run", "-d", "--name", "c-other", "--network", "dnet2", IMAGE, "sleep", "600")
    other = d2.cli("inspect", "-f", "{{.NetworkSettings.Networks.dnet2.IPAddress}}", "c-other").stdout.strip()
    assert d1.cli("exec", "c-hv1", "ping", "-c", "2", "-W", "2", other, check=False).returncode == 0

    for host, d in c.dockerds.items():
        d.cli("rm", "-f", *(["c-hv2", "c-other"] if host == "hv2" else ["c-hv1"]))
        d.cli("network", "rm", *(["dnet", "dnet2"] if host == "hv2" else ["dnet"]))
    assert c.ctl.list_switches() == [] and c.ctl.list_router_ports("R1") == []
    # only the shared gateway's reservation stays (another host may still use it)
    assert [kv.key for kv in c.ctl.store.get_prefix("cnm/")[0]] == ["cnm/ipam/10.66.0.0-24/10.66.0.1"]
    assert not os.path.exists("/etc/docker/key.json")
    for host in HOSTS:
        out = c.sb.exec(host, ["ip", "-o", "link"]).stdout
        assert " tpe" not in out and " tpc" not in out
        assert not [p for p in c.sb.ovs(host, "list-ports", "br-int").split() if p.startswith("tpe")]


def test_driver_errors_reach_the_docker_user(cluster_docker: Cluster) -> None:
    d = cluster_docker.dockerds["hv1"]
    r = d.cli("network", "create", "-d", "tuplenet", "--subnet", "10.68.0.0/24", "-o", "router=nope", "bad",
              check=False)
    assert r.returncode != 0 and "unable to get router nope" in r.stderr
    r = d.cli("network", "create", "-d", "tuplenet", "--subnet", "10.68.0.0/24", "-o", "colour=red", "bad",
              check=False)
    assert r.returncode != 0 and "unknown driver option 'colour'" in r.stderr
    assert cluster_docker.ctl.list_switches() == []
    assert d.cli("network", "ls", "-q", "-f", "name=bad").stdout.strip() == ""

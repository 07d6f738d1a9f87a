"""tpcni against an etcd that demands TLS client certificates: the etcd fields of the network config reach the
store's security settings. OVS here is a private ovsdb-server (system-id and br-int only, no switch daemon),
so ADD runs with readinessTimeout 0: what is tested is the etcd path, the rest is test_cni_conformance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_store_tls import pki, tls_etcd  # noqa: F401  (module fixtures: certificates, https-only etcd)

from tuplenet.cni.plugin import host_names, lsp_name
from tuplenet.cni.runtime import Runtime, write_launcher
from tuplenet.control import Controller
from tuplenet.sandbox.etcd import EtcdServer
from tuplenet.store import EtcdSecurity, Store

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@pytest.fixture(scope="module")
def ovsdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ovsdb-server") is None:
        pytest.skip("needs root and ovsdb-server")
    d = tmp_path_factory.mktemp("ovsdb")
    sock, pid = str(d / "db.sock"), str(d / "ovsdb-server.pid")
    subprocess.run(["ovsdb-tool", "create", str(d / "conf.db"), SCHEMA], check=True)
    subprocess.run(["ovsdb-server", f"--remote=punix:{sock}", f"--pidfile={pid}", "--detach",
                    f"--unixctl={d}/ovsdb.ctl", f"--log-file={d}/ovsdb.log", str(d / "conf.db")], check=True)
    try:
        subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "init", "--", "add-br", "br-int", "--",
                        "set", "Open_vSwitch", ".", "external_ids:system-id=tlshost"], check=True)
        yield sock
    finally:
        os.kill(int(Path(pid).read_text()), 15)


@pytest.fixture
def setup(tls_etcd: EtcdServer, pki: dict[str, str], ovsdb: str, tmp_path: Path):  # noqa: F811
    sec = EtcdSecurity(cacert=pki["ca.crt"], cert=pki["client.crt"], key=pki["client.key"])
    store = Store(tls_etcd.url, "/tn-cni-tls/", security=sec)
    ctl = Controller(store)
    if "LS-A" not in {s.name for s in ctl.list_switches()}:
        ctl.add_switch("LS-A")
    write_launcher(str(tmp_path), sys.executable)
    conf = {"cniVersion": "1.1.0", "name": "tn", "type": "tpcni", "switch": "LS-A", "subnet": "10.30.0.0/16",
            "etcdEndpoints": tls_etcd.url, "etcdPrefix": "/tn-cni-tls/", "etcdCACert": pki["ca.crt"],
            "etcdCert": pki["client.crt"], "etcdKey": pki["client.key"], "ovsdbSocket": ovsdb,
            "readinessTimeout": 0, "etcdTimeout": 3}
    yield Runtime([str(tmp_path)]), conf, ctl
    store.close()


def test_status_add_del_over_tls(setup) -> None:
    rt, conf, ctl = setup
    assert rt.invoke("tpcni", "STATUS", conf).status == 0
    netns = "tncnitls"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        r = rt.invoke("tpcni", "ADD", conf, "tls1", f"/run/netns/{netns}", "eth0")
        assert r.status == 0, r.stdout
        lsp = ctl.get_switch_port("LS-A", lsp_name("eth0", "tls1"))
        assert (lsp.chassis, f"{lsp.ip}/16") == ("tlshost", r.json["ips"][0]["address"])
        r = rt.invoke("tpcni", "DEL", conf, "tls1", f"/run/netns/{netns}", "eth0")
        assert r.status == 0, r.stdout
        assert lsp_name("eth0", "tls1") not in {p.name for p in ctl.list_switch_ports("LS-A")}
    finally:
        subprocess.run(["ip", "link", "del", host_names("tls1", "eth0")[0]], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


@pytest.mark.parametrize("drop, code", [(("etcdCert", "etcdKey"), 50), (("etcdCACert",), 50)])
def test_status_without_tls_material_names_the_problem(setup, drop: tuple[str, ...], code: int) -> None:
    rt, conf, _ = setup
    r = rt.invoke("tpcni", "STATUS", {k: v for k, v in conf.items() if k not in drop})
    assert r.status != 0 and r.json["code"] == code and "etcd" in r.json["msg"], r.stdout


def test_cert_without_key_is_a_config_error(setup) -> None:
    rt, conf, _ = setup
    r = rt.invoke("tpcni", "STATUS", {k: v for k, v in conf.items() if k != "etcdKey"})
    assert r.status != 0 and r.json["code"] == 50 and "--cert and --key" in r.json["msg"], r.stdout

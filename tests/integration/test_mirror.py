"""Port mirroring on simulated hosts: copies on a local port by direction, and to remote collectors over
ERSPAN and Geneve (seen on the underlay), through OVS Mirror rows the agent owns (others' rows untouched)."""

from __future__ import annotations

import json

from agent_cluster import Cluster
from tuplenet.model import LS
from tuplenet.model.mirror import Mirror, Target
from tuplenet.sandbox import packets as P
from tuplenet.sandbox.procs import wait_for

VM1_MAC, VM5_MAC = "f2:01:0a:0a:01:02", "f2:01:0a:0a:01:05"
COLLECTOR, COLLECTOR_MAC = "192.168.100.9", "0a:00:c0:a8:64:09"


def _mirrors(c: Cluster, host: str) -> list[dict]:
    """Mirror rows of `host` as {name, src, dst, out, ext} (port names)."""
    out = c.host(host).vsctl("--format=json", "--columns=name,select_src_port,select_dst_port,output_port,"
                             "external_ids", "list", "Mirror")
    data = json.loads(out)
    names = {}
    for row in json.loads(c.host(host).vsctl("--format=json", "--columns=_uuid,name", "list", "Port"))["data"]:
        names[row[0][1]] = row[1]

    def refs(v) -> set[str]:
        items = v[1] if v[0] == "set" else [v]
        return {names.get(x[1], "?") for x in items}
    return [{"name": r[0], "src": refs(r[1]), "dst": refs(r[2]), "out": refs(r[3]), "ext": dict(r[4][1])}
            for r in data["data"]]


def _ours(c: Cluster, host: str) -> list[dict]:
    return [m for m in _mirrors(c, host) if "tuplenet-mirror" in m["ext"]]


def _copies_since(c: Cluster, host: str, port: str, mark: int) -> list[bytes]:
    return c.host(host).tx_packets(port)[mark:]


def _mirror(name: str, port: str, direction: str, target: Target) -> Mirror:
    ls, lsp = port.split("/")
    return Mirror(name, ls, lsp, direction, target)


def test_local_mirror_follows_direction_and_leaves_foreign_rows(cluster: Cluster) -> None:
    c = cluster
    hv1 = c.host("hv1")
    c.put(LS("LS-A", 1))
    c.vm("hv1", "LS-A", "vm1", "10.10.1.2", VM1_MAC)
    c.vm("hv1", "LS-A", "vm5", "10.10.1.5", VM5_MAC)
    hv1.add_vm_port("mon")
    hv1.add_vm_port("mon2")
    hv1.vsctl("--", "--id=@o", "get", "Port", "mon2", "--", "--id=@m", "create", "Mirror", "name=foreign",
              "select_all=true", "output_port=@o", "external_ids:owner=operator",
              "--", "add", "Bridge", "br-int", "mirrors", "@m")
    c.start_agents("hv1")
    out = P.icmp_frame(VM1_MAC, VM5_MAC, "10.10.1.2", "10.10.1.5")  # vm1 sends: into the switch
    back = P.icmp_frame(VM5_MAC, VM1_MAC, "10.10.1.5", "10.10.1.2", type=0)  # vm1 receives
    c.put(_mirror("m1", "LS-A/vm1", "in", Target("local", iface="mon")))

    # in: what vm1 sends is copied, unchanged; what it receives is not.
    mark = hv1.tx_mark("mon")
    assert c.send_until("hv1", "vm1", out, "hv1", "mon").raw == out
    assert _ours(c, "hv1") == [{"name": "tuplenet-m1", "src": {"vm1"}, "dst": set(), "out": {"mon"},
                                "ext": {"tuplenet-mirror": "m1"}}]
    c.send_until("hv1", "vm5", back, "hv1", "vm1")
    c.send_until("hv1", "vm1", out, "hv1", "mon")  # a barrier: later than `back`
    assert back not in _copies_since(c, "hv1", "mon", mark)

    # out: the row is fixed in place; now only what vm1 receives is copied.
    c.put(_mirror("m1", "LS-A/vm1", "out", Target("local", iface="mon")))
    assert c.send_until("hv1", "vm5", back, "hv1", "mon").raw == back
    mark = hv1.tx_mark("mon")
    c.send_until("hv1", "vm1", out, "hv1", "vm5")
    c.send_until("hv1", "vm5", back, "hv1", "mon")
    assert out not in _copies_since(c, "hv1", "mon", mark)

    # both
    c.put(_mirror("m1", "LS-A/vm1", "both", Target("local", iface="mon")))
    wait_for(lambda: _ours(c, "hv1") and _ours(c, "hv1")[0]["src"] == {"vm1"}, timeout=10, what="both")
    assert c.send_until("hv1", "vm1", out, "hv1", "mon").raw == out
    assert c.send_until("hv1", "vm5", back, "hv1", "mon").raw == back

    # deleted: our row goes, the operator's row stays as it was.
    c.store.delete("entity_view/mirror/m1")
    wait_for(lambda: not _ours(c, "hv1"), timeout=10, what="our mirror row gone")
    mark = hv1.tx_mark("mon")
    c.send_until("hv1", "vm1", out, "hv1", "vm5")
    c.send_until("hv1", "vm5", back, "hv1", "vm1")
    assert _copies_since(c, "hv1", "mon", mark) == []
    assert [m["name"] for m in _mirrors(c, "hv1")] == ["foreign"]
    assert _mirrors(c, "hv1")[0]["ext"] == {"owner": "operator"}

    # A target that cannot work is reported in status, and nothing is made.
    c.put(_mirror("m2", "LS-A/vm1", "in", Target("local", iface="vm5")))
    wait_for(lambda: (c.status("hv1") or {}).get("ovsdb", {}).get("mirror_problems")
             == {"m2": "local target vm5 is a VM port"}, timeout=10, what="mirror problem in status")
    assert not _ours(c, "hv1")


def _underlay_to(c: Cluster, host: str, ip: str) -> list[bytes]:
    """IPv4 payloads (after the IP header) of underlay frames `host` sent to `ip`."""
    out = []
    dst = bytes(int(x) for x in ip.split("."))
    for f in c.net.phy_frames_from(host):
        if f[12:14] == b"\x08\x00" and f[30:34] == dst:
            ihl = (f[14] & 0xF) * 4
            out.append((f[23], f[14 + ihl:]))
    return out


def _erspan_copies(c: Cluster, host: str) -> list[tuple[int, bytes]]:
    """(session id, inner frame) of ERSPAN type II (GRE with sequence number, protocol 0x88be) copies."""
    got = []
    for proto, payload in _underlay_to(c, host, COLLECTOR):
        if proto == 47 and payload[2:4] == b"\x88\xbe":
            gre_len = 8 if payload[0] & 0x10 else 4
            erspan = payload[gre_len:gre_len + 8]
            assert erspan[0] >> 4 == 1  # ERSPAN version 1 (type II)
            got.append((int.from_bytes(erspan[2:4], "big") & 0x3FF, payload[gre_len + 8:]))
    return got


def _geneve_copies(c: Cluster, host: str) -> list[tuple[int, bytes]]:
    """(VNI, inner frame) of Geneve copies to the collector (UDP 6081)."""
    got = []
    for proto, payload in _underlay_to(c, host, COLLECTOR):
        if proto == 17 and payload[2:4] == (6081).to_bytes(2, "big"):
            gen = payload[8:]
            opt_len = (gen[0] & 0x3F) * 4
            got.append((int.from_bytes(gen[4:7], "big"), gen[8 + opt_len:]))
    return got


def test_remote_mirror_erspan_then_geneve_copies_on_the_underlay(cluster: Cluster) -> None:
    c = cluster
    hv1 = c.host("hv1")
    c.put(LS("LS-A", 1))
    vm1 = c.vm("hv1", "LS-A", "vm1", "10.10.1.2", VM1_MAC)
    vm2 = c.vm("hv2", "LS-A", "vm2", "10.10.1.3", "f2:01:0a:0a:01:03")
    hv1.set_neighbour(COLLECTOR, COLLECTOR_MAC)  # nothing answers ARP on the simulated underlay
    c.start_agents("hv1", "hv2")
    f = P.icmp_frame(vm1.mac, vm2.mac, vm1.ip, vm2.ip)
    c.send_until("hv1", "vm1", f, "hv2", "vm2")  # forwarding works before any mirror

    c.put(_mirror("m1", "LS-A/vm1", "both", Target("erspan", ip=COLLECTOR, key=7)))
    port = "tpme-c0a86409-7"
    wait_for(lambda: _ours(c, "hv1"), timeout=10, what="mirror row on hv1")
    opts = hv1.vsctl("get", "Interface", port, "type", "options", "external_ids").split("\n")
    assert opts[0] == "erspan"
    assert opts[1] == '{erspan_idx="1", erspan_ver="1", key="7", remote_ip="192.168.100.9"}'
    assert opts[2] == '{tuplenet-role=mirror}'
    assert _ours(c, "hv1")[0]["out"] == {port}
    assert _ours(c, "hv2") == []  # only the chassis holding the port mirrors it

    def copied(fn, key: int) -> bool:
        c.send_until("hv1", "vm1", f, "hv2", "vm2")
        return (key, f) in fn(c, "hv1")
    wait_for(lambda: copied(_erspan_copies, 7), timeout=10, what="ERSPAN copy of vm1's frame on the underlay")

    # An agent restart keeps the very same row and port (same uuids, same ofport): nothing to redo.
    def ids() -> tuple[str, str, str]:
        return (hv1.vsctl("--columns=_uuid", "--bare", "find", "Mirror", "name=tuplenet-m1").strip(),
                hv1.vsctl("get", "Port", port, "_uuid").strip(), hv1.vsctl("get", "Interface", port, "ofport").strip())
    before = ids()
    hv1.agent.stop()
    agent = hv1.start_agent(c.endpoint, c.prefix)
    wait_for(lambda: (s := c.status("hv1")) and s["pid"] == agent.pid, timeout=20, what="restarted agent ready")
    c.send_until("hv1", "vm1", f, "hv2", "vm2")
    assert ids() == before

    # Another target: the ERSPAN port goes, a Geneve port to the collector comes, copies follow.
    c.put(_mirror("m1", "LS-A/vm1", "both", Target("geneve", ip=COLLECTOR, key=42)))
    wait_for(lambda: _ours(c, "hv1") and _ours(c, "hv1")[0]["out"] == {"tpmg-c0a86409-42"}, timeout=10,
             what="mirror moved to the Geneve port")
    ports = hv1.vsctl("list-ports", "br-int").split()
    assert "tpmg-c0a86409-42" in ports and port not in ports
    assert hv1.vsctl("get", "Interface", "tpmg-c0a86409-42", "type").strip() == "geneve"
    wait_for(lambda: copied(_geneve_copies, 42), timeout=10, what="Geneve copy of vm1's frame on the underlay")

    # Deleting the mirror removes our row and our collector port.
    c.store.delete("entity_view/mirror/m1")
    wait_for(lambda: not _ours(c, "hv1") and "tpmg-c0a86409-42" not in hv1.vsctl("list-ports", "br-int").split(),
             timeout=10, what="mirror and collector port gone")
    c.send_until("hv1", "vm1", f, "hv2", "vm2")


def test_mirror_follows_its_port_to_another_chassis(cluster: Cluster) -> None:
    from tuplenet.model import LSP

    c = cluster
    c.put(LS("LS-A", 1))
    vm1 = c.vm("hv1", "LS-A", "vm1", "10.10.1.2", VM1_MAC)
    vm5 = c.vm("hv2", "LS-A", "vm5", "10.10.1.5", VM5_MAC)
    for h in ("hv1", "hv2"):
        c.host(h).add_vm_port("mon")
    c.start_agents("hv1", "hv2")
    c.put(_mirror("m1", "LS-A/vm1", "in", Target("local", iface="mon")))
    f = P.icmp_frame(vm1.mac, vm5.mac, vm1.ip, vm5.ip)
    assert c.send_until("hv1", "vm1", f, "hv1", "mon").raw == f
    assert _ours(c, "hv2") == []
    # Move vm1 to hv2 (as a migration would): hv2 claims it, hv1 drops its row, hv2 makes one.
    c.host("hv2").add_vm_port("vm1", "vm1")
    c.put(LSP("LS-A", "vm1", vm1.ip, vm1.mac, None, "hv1", requested_chassis="hv2"))
    wait_for(lambda: not _ours(c, "hv1") and _ours(c, "hv2"), timeout=15, what="mirror row moved to hv2")
    assert _ours(c, "hv2")[0]["src"] == {"vm1"}
    assert c.send_until("hv2", "vm1", f, "hv2", "mon").raw == f

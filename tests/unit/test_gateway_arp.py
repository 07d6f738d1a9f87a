"""Gateway ARP (agent/gateway_arp.py + pipeline/gateway.py) on a pure view: requests for unresolved next
hops, learning only solicited replies per router port, aging with refresh, persistence, gratuitous ARP."""

from __future__ import annotations

import json
from types import SimpleNamespace

from topo_helpers import build_view

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Output, ip_int
from tuplenet.agent.gateway_arp import GatewayArp, arp_frame, parse_arp
from tuplenet.model import LNAT, LR, LRP, LS, LSP

PATCH_OFPORT = 7
OUT_ID = 6
GW_IP, GW_MAC = "172.16.0.1", "02:ee:00:00:00:01"


def _facts(gateway: bool = True) -> dict:
    f: dict = {("self",): "hv2", ("LS", "LS-out"): LS("LS-out", OUT_ID),
               ("lsp", "LS-out", "phy"): LSP("LS-out", "phy", "255.255.255.255", "ff:ff:ff:ff:ff:ee", "br-phy", "hv2"),
               ("patchport", "phy"): PATCH_OFPORT,
               ("lnat", "LR-e1", "s"): LNAT("LR-e1", "s", "10.10.0.0", 16, "snat", "172.16.0.100")}
    for n, (lr_id, ip) in enumerate(((4, "172.16.0.2"), (5, "172.16.0.3")), 1):
        lr, mac = f"LR-e{n}", f"f2:01:ac:10:00:0{n + 1}"
        f[("LR", lr)] = LR(lr, lr_id, "hv2")
        f[("lrp", lr, f"{lr}_out")] = LRP(lr, f"{lr}_out", ip, 24, mac, f"out_{lr}")
        f[("lsp", "LS-out", f"out_{lr}")] = LSP("LS-out", f"out_{lr}", ip, mac, f"{lr}_out")
    if gateway:
        f[("gateway",)] = True
    return f


class Conn:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple]] = []

    def packet_out(self, data: bytes, actions: tuple) -> None:
        self.sent.append((data, actions))


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _gw(tmp_path, facts: dict | None = None, aging: float = 300.0):
    view, conn, clock = build_view(facts or _facts()), Conn(), Clock()
    return GatewayArp(view, conn, str(tmp_path), aging, clock), view, conn, clock


def _generate(lrp_ip: str, nh: str) -> SimpleNamespace:
    md = {"metadata": OUT_ID, T.R_NEXT_HOP: ip_int(nh), T.R_OUT_LRP_IP: ip_int(lrp_ip)}
    return SimpleNamespace(data=b"", metadata=md)


def _reply(sha: str, spa: str, tha: str, tpa: str) -> SimpleNamespace:
    b = bytes.fromhex
    frame = arp_frame(2, b(sha.replace(":", "")), spa, b(tha.replace(":", "")), tpa, dst=b(tha.replace(":", "")))
    return SimpleNamespace(data=frame, metadata={"metadata": OUT_ID})


def test_unresolved_next_hop_is_asked_for_from_the_router_port(tmp_path) -> None:
    gw, _, conn, _ = _gw(tmp_path)
    gw.on_generate(_generate("172.16.0.2", GW_IP))
    gw.on_generate(_generate("172.16.0.2", GW_IP))  # within a second: one request
    (data, actions), = conn.sent
    assert actions == (Output(PATCH_OFPORT),)
    assert parse_arp(data) == (1, "f2:01:ac:10:00:02", "172.16.0.2", "00:00:00:00:00:00", GW_IP)
    assert data[:6] == b"\xff" * 6
    gw.on_generate(_generate("172.16.0.2", "192.0.2.1"))  # not on the port's subnet
    gw.on_generate(_generate("10.9.9.9", GW_IP))  # not a router port of this switch
    assert len(conn.sent) == 1 and gw.stats.rejected == {"next_hop_outside_subnet": 1, "not_a_router_port": 1}


def test_only_a_solicited_reply_is_learned_and_only_for_the_asking_port(tmp_path) -> None:
    gw, view, _, _ = _gw(tmp_path)
    gw.on_learn(_reply(GW_MAC, GW_IP, "f2:01:ac:10:00:02", "172.16.0.2"))  # nobody asked
    gw.on_generate(_generate("172.16.0.3", GW_IP))  # LR-e2 asks
    gw.on_learn(_reply("02:66:66:66:66:66", GW_IP, "f2:01:ac:10:00:02", "172.16.0.2"))  # poison LR-e1: no
    gw.on_learn(_reply(GW_MAC, GW_IP, "f2:01:ac:10:00:03", "172.16.0.3"))
    gw.on_learn(_reply("02:66:66:66:66:66", GW_IP, "f2:01:ac:10:00:03", "172.16.0.3"))  # second answer: no
    changed: set = set()
    gw.step(changed)
    neigh = {k: v for k, v in view.facts.items() if k[0] == "neigh"}
    assert neigh == {("neigh", "LR-e2", "LR-e2_out", GW_IP): GW_MAC}
    assert gw.stats.rejected == {"unsolicited": 3}
    flows = _engine_flows(view)
    (bind,) = [f for f in flows if f.table == T.LS_MAC_BIND and f.priority == 1 and "reg3" in f.body_text()]
    assert bind.body_text() == (f"table={T.LS_MAC_BIND},priority=1,metadata=0x6,reg2=0xac100001,reg3=0xac100003,"
                                f"actions=set_field:{GW_MAC}->dl_dst")


def test_entries_refresh_before_they_age_and_go_when_unanswered(tmp_path) -> None:
    gw, view, conn, clock = _gw(tmp_path, aging=100)
    gw.on_generate(_generate("172.16.0.2", GW_IP))
    gw.on_learn(_reply(GW_MAC, GW_IP, "f2:01:ac:10:00:02", "172.16.0.2"))
    gw.step(set())
    key = ("neigh", "LR-e1", "LR-e1_out", GW_IP)
    assert view.get(key) == GW_MAC
    clock.t += 76
    gw.step(set())  # 3/4 of the aging: asked again
    assert len([d for d, _ in conn.sent if parse_arp(d)[4] == GW_IP]) == 2
    gw.on_learn(_reply(GW_MAC, GW_IP, "f2:01:ac:10:00:02", "172.16.0.2"))  # renewed
    clock.t += 76
    gw.step(set())
    assert view.get(key) == GW_MAC and gw.stats.refreshed == 1
    clock.t += 101  # no answer to the next refresh
    gw.step(set())
    assert view.get(key) is None and gw.stats.expired == 1


def test_learned_entries_survive_a_restart_but_not_their_age(tmp_path) -> None:
    gw, _, _, clock = _gw(tmp_path)
    gw.on_generate(_generate("172.16.0.2", GW_IP))
    gw.on_learn(_reply(GW_MAC, GW_IP, "f2:01:ac:10:00:02", "172.16.0.2"))
    gw.step(set())
    saved = json.loads((tmp_path / "gateway_arp.json").read_text())
    assert saved == [{"lr": "LR-e1", "lrp": "LR-e1_out", "ip": GW_IP, "mac": GW_MAC, "learned": clock.t}]
    again, view, _, clock2 = _gw(tmp_path)
    clock2.t = clock.t + 10
    again.load()
    again.step(set())
    assert view.get(("neigh", "LR-e1", "LR-e1_out", GW_IP)) == GW_MAC
    late, view, _, clock3 = _gw(tmp_path)
    clock3.t = clock.t + 301
    late.load()
    late.step(set())
    assert view.get(("neigh", "LR-e1", "LR-e1_out", GW_IP)) is None
    for text in ("{not json", '{"a": 1}', '"text"', "5", "null", "[null, 1]"):
        (tmp_path / "gateway_arp.json").write_text(text)
        broken, _, _, _ = _gw(tmp_path)
        broken.load()  # ignored (with a warning when unreadable), never fatal
        assert not broken.entries


def test_addresses_moving_here_are_announced_once_after_their_flows(tmp_path) -> None:
    gw, _, conn, _ = _gw(tmp_path)
    gw.step({("x",)})
    assert not conn.sent  # the flows go in with this batch: announced at the next step
    gw.step(set())
    announced = {parse_arp(d)[2]: parse_arp(d) for d, a in conn.sent}
    assert set(announced) == {"172.16.0.2", "172.16.0.3", "172.16.0.100"}
    op, sha, spa, tha, tpa = announced["172.16.0.100"]
    assert (op, sha, tpa) == (1, "f2:01:ac:10:00:64", "172.16.0.100")
    gw.step({("x",)})
    gw.step(set())
    assert len(conn.sent) == 3  # nothing new


def test_gateway_flows_on_the_outside_switch() -> None:
    flows = _engine_flows(build_view(_facts()))
    ctl = sorted(f.body_text() for f in flows if f.table == T.LS_IN_ARP_CTL and f.priority == 2)
    assert len(ctl) == 2 and all("controller(userdata=" in t and "meter:" in t for t in ctl)
    assert any("arp_op=0x2" in t and "reg0=0xffff" in t for t in ctl)
    assert len({t.split("meter:")[1].split(",")[0] for t in ctl}) == 2  # replies cannot starve resolution
    plain = _engine_flows(build_view(_facts(gateway=False)))
    (drop,) = [f for f in plain if f.table == T.LS_IN_ARP_CTL and f.priority == 2]
    assert drop.actions == () and "dl_dst=00:00:00:00:00:00" in drop.body_text()


def _engine_flows(view) -> list:
    e = Engine(view)
    e.full()
    return list(e.active.values())


def test_the_table_is_bounded(tmp_path, monkeypatch) -> None:
    import tuplenet.agent.gateway_arp as G

    monkeypatch.setattr(G, "MAX_ENTRIES", 1)
    gw, view, _, clock = _gw(tmp_path)
    for ip, mac in ((GW_IP, GW_MAC), ("172.16.0.9", "02:ee:00:00:00:09")):
        gw.on_generate(_generate("172.16.0.2", ip))
        gw.on_learn(_reply(mac, ip, "f2:01:ac:10:00:02", "172.16.0.2"))
    gw.step(set())
    assert list(gw.entries) == [("LR-e1", "LR-e1_out", GW_IP)] and gw.stats.rejected == {"table_full": 1}
    clock.t += 2
    gw.on_generate(_generate("172.16.0.2", GW_IP))  # a known entry still renews when full
    gw.on_learn(_reply(GW_MAC, GW_IP, "f2:01:ac:10:00:02", "172.16.0.2"))
    assert gw.stats.refreshed == 1

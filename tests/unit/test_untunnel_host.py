"""ENABLE_UNTUNNEL on the host (agent/untunnel_host.py, ovsdb_model): the agent wants br-int-dsrgw as an
internal port and removes only its own; it reads - never writes - the host settings and names each
missing one once."""

from __future__ import annotations

import logging
from pathlib import Path

from tuplenet.agent.ovsdb_model import DSRGW_PORT, BridgeView, DbView, Desired, IfaceView, OvsState, PortView
from tuplenet.agent.ovsdb_plan import AddPort, DelPort, plan
from tuplenet.agent.untunnel_host import UntunnelHost, dsr_fact, has_default_route, host_problems

GOOD_BR = dict(fail_mode="secure", protocols=frozenset({"OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"}),
               other_config={"disable-in-band": "true"})


def _view(*ports: PortView) -> DbView:
    return DbView(system_id="hv1", bridges={"br-int": BridgeView("br-int", ports=ports, **GOOD_BR)})  # type: ignore[arg-type]


def _dsrgw(role: str | None = "dsrgw", typ: str = "internal") -> PortView:
    ext = {"tuplenet-role": role} if role else {}
    return PortView(DSRGW_PORT, (IfaceView(DSRGW_PORT, typ, {}, ext, ofport=3, mac="aa:55:aa:55:00:03"),))


def test_the_port_is_created_as_an_internal_port_when_wanted() -> None:
    p = plan(_view(), Desired(dsrgw=True))
    adds = [a for a in p.actions if isinstance(a, AddPort)]
    assert [(a.spec.name, a.spec.type, dict(a.spec.external_ids)) for a in adds] == [
        (DSRGW_PORT, "internal", {"tuplenet-role": "dsrgw"})]
    assert plan(_view(_dsrgw()), Desired(dsrgw=True)).actions == []  # converged: no writes


def test_only_our_own_port_is_removed_and_only_when_told() -> None:
    assert [a for a in plan(_view(_dsrgw()), Desired(dsrgw=False)).actions if isinstance(a, DelPort)] == [
        DelPort("br-int", DSRGW_PORT, "dsrgw")]
    assert plan(_view(_dsrgw()), Desired()).actions == []  # not managed: untouched
    assert plan(_view(_dsrgw(role=None)), Desired(dsrgw=False)).actions == []  # 0.3's or someone's: kept


def test_the_fact_needs_both_ofport_and_mac() -> None:
    assert dsr_fact(OvsState(ofports={DSRGW_PORT: 3}, macs={DSRGW_PORT: "aa:55:aa:55:00:03"})) == {
        ("untunnel",): ("aa:55:aa:55:00:03", 3)}
    assert dsr_fact(OvsState(ofports={DSRGW_PORT: 3})) == {}
    assert dsr_fact(OvsState(macs={DSRGW_PORT: "aa:55:aa:55:00:03"})) == {}


def _proc(tmp: Path, forwarding: str = "1", rp_all: str = "0", rp_port: str = "0", default: bool = True) -> str:
    conf = tmp / "sys" / "net" / "ipv4" / "conf"
    for scope, rp in (("all", rp_all), (DSRGW_PORT, rp_port)):
        (conf / scope).mkdir(parents=True)
        (conf / scope / "rp_filter").write_text(rp + "\n")
        (conf / scope / "forwarding").write_text(forwarding + "\n")
    (tmp / "net").mkdir()
    rows = ["Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
            "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"]
    if default:
        rows.append("eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0")
    (tmp / "net" / "route").write_text("\n".join(rows) + "\n")
    return str(tmp)


def test_a_well_prepared_host_has_no_problems(tmp_path: Path) -> None:
    assert host_problems(proc=_proc(tmp_path)) == []
    assert has_default_route(_proc(tmp_path / "x", default=False)) is False


def test_each_missing_setting_is_named(tmp_path: Path) -> None:
    got = host_problems(proc=_proc(tmp_path, forwarding="0", rp_all="1", rp_port="1", default=False))
    assert len(got) == 4
    assert got[0].startswith(f"net.ipv4.conf.{DSRGW_PORT}.forwarding is not 1")
    assert got[1].startswith("net.ipv4.conf.all.rp_filter is 1") and got[2].startswith(
        f"net.ipv4.conf.{DSRGW_PORT}.rp_filter is 1")
    assert got[3].startswith("no IPv4 default route")
    assert host_problems(proc=_proc(tmp_path / "loose", rp_all="2", rp_port="2")) == []  # loose mode is fine


def test_a_missing_interface_is_one_problem(tmp_path: Path) -> None:
    (tmp_path / "sys" / "net" / "ipv4" / "conf").mkdir(parents=True)
    got = host_problems(proc=str(tmp_path))
    assert len(got) == 1 and "not a network interface" in got[0]


def test_warnings_are_logged_once_and_kept_in_status(tmp_path: Path, caplog) -> None:
    h = UntunnelHost(port="tn-no-such-if0", proc=_proc(tmp_path, forwarding="0"))
    caplog.set_level(logging.WARNING, logger="tuplenet")
    state = OvsState(ofports={"tn-no-such-if0": 4}, macs={"tn-no-such-if0": "aa:55:aa:55:00:04"})
    assert h.facts(state) == {("untunnel",): ("aa:55:aa:55:00:04", 4)}
    h.facts(state)
    h.status()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(set(warnings)) >= 2  # cannot bring it up + not an interface here; each once
    st = h.status()
    assert st["ok"] is False and st["ofport"] == 4 and any("cannot bring tn-no-such-if0 up" in p for p in st["problems"])

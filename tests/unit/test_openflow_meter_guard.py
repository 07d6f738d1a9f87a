"""Every controller() in the pipeline goes through one of the meters the agent installs (issue 7 §5): a
guard for flows added later, and the TTL buckets' layout."""

from __future__ import annotations

from topo_helpers import build_view, tutorial_facts

from tuplenet.agent import tables as T
from tuplenet.agent.engine import Engine
from tuplenet.agent.flow import Controller, Meter, ip_int
from tuplenet.agent.openflow import meters as mt
from tuplenet.agent.pipeline import const


def test_every_controller_action_is_metered_by_an_installed_meter() -> None:
    eng = Engine(build_view(tutorial_facts()))
    eng.full()
    installed = {m.meter_id for m in const.meters()}
    punting = [f for f in eng.desired().values() if any(isinstance(a, Controller) for a in f.actions)]
    assert punting, "the tutorial topology punts TTL-exceeded packets"
    for f in punting:
        assert isinstance(f.actions[0], Meter) and f.actions[0].meter_id in installed, f.to_text()
    assert all(mt.is_ours(i) for i in installed)


def test_ttl_buckets_cover_every_source_once_and_separate_subnets() -> None:
    flows = [f for f in const.flows() if any(isinstance(a, Controller) for a in f.actions) and f.table == T.LR_IN_TTL]

    def meter_of(src: str, ttl: int) -> int:
        hits = [f for f in flows if dict((m.field, m) for m in f.match)["nw_ttl"].value == ttl
                and all(m.mask is None or ip_int(src) & m.mask == m.value for m in f.match if m.field == "nw_src")]
        assert len(hits) == 1, (src, ttl, len(hits))
        return hits[0].actions[0].meter_id

    for ttl in (0, 1):
        assert meter_of("10.10.1.2", ttl) != meter_of("10.10.2.2", ttl)  # same host part, two subnets
        assert meter_of("10.10.1.2", ttl) != meter_of("10.10.1.3", ttl)
        assert meter_of("192.168.7.9", ttl) == meter_of("10.0.23.25", ttl)  # (7, 9) == (0x17 & 15, 0x19 & 15)

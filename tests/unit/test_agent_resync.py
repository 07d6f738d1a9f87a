"""The agent's re-listing (after a watch fell behind compaction, or at start when the listing started over):
the view ends up holding exactly the fresh listing, whatever kinds of records it holds."""
from __future__ import annotations

from tuplenet.agent.config import load
from tuplenet.agent.daemon import Agent
from tuplenet.model import LS, decode_kv


def _change(key: str, value: str) -> tuple:
    from tuplenet.model import parse_key

    kind, ident = parse_key(key)
    return (kind, *ident), decode_kv(key, value), None


RECORDS = {
    "entity_view/LS/ls1": "id=1",
    "entity_view/LS/ls1/acl/deny-ssh": "direction=in,priority=100,match_protocol=tcp,dst_port=22,action=drop",
    "entity_view/address_set/web": "addresses=10.0.0.1",
    "entity_view/port_group/pg1": "ports=ls1/vm1",
    "entity_view/port_group/pg1/acl/r1": "direction=in,priority=10,action=allow",
    "entity_view/LS/ls1/lb/vip1": "vip=10.0.0.100,port=80,backends=10.0.0.2:8080;10.0.0.3:8080",
    "entity_view/mirror/m1": "port=ls1/vm1,direction=both,target=local:tap9",
}


def test_a_relisting_removes_records_of_every_kind_that_are_gone() -> None:
    agent = Agent(load(["-f", "192.168.100.2"], {}))
    changes = [_change(k, v) for k, v in RECORDS.items()]
    assert all(c[1] is not None for c in changes), "a record in this test does not decode"
    agent._apply_changes(changes, set())
    assert all(agent.view.get(c[0]) is not None for c in changes)
    changed: set[tuple] = set()
    agent._resync([(("LS", "ls1"), LS("ls1", 1), None)], changed)  # everything else was deleted meanwhile
    left = [c[0] for c in changes if agent.view.get(c[0]) is not None]
    assert left == [("LS", "ls1")]
    assert {c[0] for c in changes[1:]} <= changed


def test_the_relisted_kinds_are_every_kind_a_topology_key_names() -> None:
    from tuplenet.agent.etcdsync import TOPOLOGY_KINDS
    from tuplenet.model import parse_key

    tops = ("LS", "LR", "chassis", "mirror", "address_set", "port_group", "x")
    subs = ("lsp", "acl", "lrp", "lsr", "lnat", "lb", "x")
    keys = [f"entity_view/{t}/a" for t in tops] + [f"entity_view/{t}/a/{s}/b" for t in tops for s in subs]
    assert {p[0] for k in keys if (p := parse_key(k))} == TOPOLOGY_KINDS


def test_every_store_in_the_tree_lists_the_topology_for_the_agent_side() -> None:
    """TopologySync runs over etcd (Store), the API's cache and MemStore (the API's fuzz and tests): each takes
    the page callback the streamed listing passes (a MemStore without it made GET /trace answer 500)."""
    from tuplenet.agent.etcdsync import TopologySync
    from tuplenet.control.memstore import MemStore

    store = MemStore()
    store.put("entity_view/LS/ls1", "id=1")
    store.put("entity_view/LS/ls1/lsp/p1", "ip=10.0.0.2,mac=f2:01:0a:00:00:02")
    pages: list = []
    instead, side, _rev = TopologySync(store, lambda *a: None).streamed_listing(pages.append)
    assert instead is None and {c[0] for p in pages for c in p} == {("LS", "ls1"), ("lsp", "ls1", "p1")}
    changes, _ = TopologySync(store, lambda *a: None).topology_listing()
    assert len(changes) == 2

"""`tuplenet check`: compute the flows this host should have and compare them with what OVS has."""

from __future__ import annotations

import sys

from ..store import Store, StoreError
from .config import ConfigError, load
from .engine import Engine
from .etcdsync import TopologySync
from .flow import Flow
from .local_facts import local_facts
from .ondemand import demand_facts
from .ovsdb import LocalOvs, OvsdbError
from .pipeline.ondemand import MODE_KEY
from .status import read_status
from .view import View


def compute_desired(cfg) -> tuple[Engine, str]:
    ovs = LocalOvs(cfg.ovsdb_path, cfg.bridge).start(timeout=10.0)
    try:
        state = ovs.snapshot()
    finally:
        ovs.stop()
    view = View()
    changed: set = set()
    store = Store(cfg.endpoints, prefix=cfg.prefix, security=cfg.security)
    try:
        changes, _ = TopologySync(store, lambda *a: None).listing()
    finally:
        store.close()
    for fkey, obj, kv in changes:
        view.apply(fkey, obj, changed, kv.create_revision if kv is not None else 0)
    # The running agent's mode and demand set (ondemand.py), from its status; ONDEMAND if it has none.
    status = read_status(cfg.rundir)  # the running agent's (empty if there is none)
    od = status.get("ondemand")
    mode = od.get("enabled") if isinstance(od, dict) else None
    on = cfg.ondemand if not isinstance(mode, bool) else mode
    facts = local_facts(state, cfg, state.system_id)  # as the daemon has them (local_facts.py)
    facts[MODE_KEY] = on
    for k, v in facts.items():
        view.apply(k, v, changed)
    if cfg.untunnel:  # as the daemon has it: the DSR port's fact (untunnel_host.py)
        from .untunnel_host import dsr_fact

        for k, v in dsr_fact(state).items():
            view.apply(k, v, changed)
    if on:
        for k, v in demand_facts(view, status).items():
            view.apply(k, v, changed)
    if cfg.gateway:  # as the daemon has them (daemon._start_gateway): learned next hops from the state file
        from .gateway_arp import GatewayArp

        gw = GatewayArp(view, None, cfg.rundir, cfg.arp_aging)
        gw.load()
        for k, v in gw.loaded_facts().items():
            view.apply(k, v, changed)
    engine = Engine(view)
    engine.full()
    return engine, state.system_id or ""


def installed(cfg) -> tuple[dict[int, tuple[int, int]], dict, dict]:
    """Our flows (cookie -> table, priority), groups and meters as the switch has them."""
    from .openflow.conn import OpenFlowConnection
    from .openflow.meters import is_ours as meter_is_ours
    from .outputs import group_is_ours

    conn = OpenFlowConnection(cfg.mgmt_socket)
    try:
        conn.start(timeout=5.0)
        groups = {i: d for i, d in conn.dump_groups().items() if group_is_ours(i)}
        meters = {i: m.spec() for i, m in conn.dump_meters().items() if meter_is_ours(i)}
        return conn.dump_cookies(), groups, meters
    finally:
        conn.close()


def installed_cookies(cfg) -> dict[int, tuple[int, int]]:
    return installed(cfg)[0]


def diff(cfg) -> tuple[list[Flow], list[int], dict, dict, str]:
    """(missing flows, extra cookies, desired, installed, chassis) for this host right now."""
    return full_diff(cfg)[:5]


def full_diff(cfg) -> tuple:
    """diff() plus (problems with groups and meters) as one-line texts."""
    from .openflow.groups import GroupDesc

    engine, sid = compute_desired(cfg)
    cookies, groups, meters = installed(cfg)
    desired = engine.desired()
    missing = [f for c, f in desired.items() if c not in cookies]
    extra = sorted(set(cookies) - desired.keys())
    problems = []
    want_groups = {g.group_id: g for g in engine.desired_outputs("group").values()}
    for gid, g in sorted(want_groups.items()):
        if gid not in groups:
            problems.append(f"missing: group {gid:#x} {g.text() if hasattr(g, 'text') else g}")
        elif groups[gid] != GroupDesc.of(g):
            problems.append(f"differs: group {gid:#x}")
    problems += [f"extra:   group {gid:#x}" for gid in sorted(groups.keys() - want_groups.keys())]
    want_meters = {m.meter_id: m for m in engine.desired_outputs("meter").values()}
    for mid, m in sorted(want_meters.items()):
        if mid not in meters:
            problems.append(f"missing: meter {mid:#x} rate={m.rate} burst={m.burst}")
        elif meters[mid] != m:
            problems.append(f"differs: meter {mid:#x}")
    problems += [f"extra:   meter {mid:#x}" for mid in sorted(meters.keys() - want_meters.keys())]
    return missing, extra, desired, cookies, sid, problems


def main(argv: list[str]) -> int:
    try:
        cfg = load(argv)
        missing, extra, desired, flows, sid, problems = full_diff(cfg)
    except (ConfigError, OvsdbError, StoreError) as exc:
        print(f"tuplenet check: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001
        print(f"tuplenet check: cannot read flows: {exc}", file=sys.stderr)
        return 2
    for f in sorted(missing, key=lambda f: (f.table, -f.priority)):
        print(f"missing: {f.to_text()}")
    for c in extra:
        table, prio = flows[c]
        print(f"extra:   cookie={hex(c)},table={table},priority={prio}")
    for p in problems:
        print(p)
    print(f"chassis {sid}: {len(desired)} flows desired, {len(flows)} installed, "
          f"{len(missing)} missing, {len(extra)} extra; groups and meters: {len(problems)} differences")
    return 1 if missing or extra or problems else 0

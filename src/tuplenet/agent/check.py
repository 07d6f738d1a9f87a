"""`tuplenet check`: compute the flows this host should have and compare them with what OVS has."""

from __future__ import annotations

import sys

from ..store import Store, StoreError
from .config import ConfigError, load
from .daemon import ovs_facts
from .engine import Engine
from .etcdsync import TopologySync
from .flow import Flow
from .ovsdb import LocalOvs, OvsdbError
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
    for k, v in ovs_facts(state).items():
        view.apply(k, v, changed)
    engine = Engine(view)
    engine.full()
    return engine, state.system_id or ""


def installed_cookies(cfg) -> dict[int, tuple[int, int]]:
    from .openflow.conn import OpenFlowConnection

    conn = OpenFlowConnection(cfg.mgmt_socket)
    try:
        conn.start(timeout=5.0)
        return conn.dump_cookies()
    finally:
        conn.close()


def diff(cfg) -> tuple[list[Flow], list[int], dict, dict, str]:
    """(missing flows, extra cookies, desired, installed, chassis) for this host right now."""
    engine, sid = compute_desired(cfg)
    installed = installed_cookies(cfg)
    desired = engine.desired()
    missing = [f for c, f in desired.items() if c not in installed]
    extra = sorted(set(installed) - desired.keys())
    return missing, extra, desired, installed, sid


def main(argv: list[str]) -> int:
    try:
        cfg = load(argv)
        missing, extra, desired, installed, sid = diff(cfg)
    except (ConfigError, OvsdbError, StoreError) as exc:
        print(f"tuplenet check: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001
        print(f"tuplenet check: cannot read flows: {exc}", file=sys.stderr)
        return 2
    for f in sorted(missing, key=lambda f: (f.table, -f.priority)):
        print(f"missing: {f.to_text()}")
    for c in extra:
        table, prio = installed[c]
        print(f"extra:   cookie={hex(c)},table={table},priority={prio}")
    print(f"chassis {sid}: {len(desired)} flows desired, {len(installed)} installed, "
          f"{len(missing)} missing, {len(extra)} extra")
    return 1 if missing or extra else 0

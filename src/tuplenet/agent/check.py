"""`tuplenet check`: compute the flows this host should have and compare them with what OVS has."""

from __future__ import annotations

import sys

from ..store import Store, StoreError
from .config import ConfigError, load
from .daemon import ovs_facts
from .engine import Engine
from .etcdsync import TopologySync
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
    store = Store(cfg.endpoints, prefix=cfg.prefix)
    try:
        changes, _ = TopologySync(store, lambda *a: None).listing()
    finally:
        store.close()
    for fkey, obj, _kv in changes:
        view.apply(fkey, obj, changed)
    for k, v in ovs_facts(state).items():
        view.apply(k, v, changed)
    engine = Engine(view)
    engine.full()
    return engine, state.system_id or ""


def main(argv: list[str]) -> int:
    from .openflow.conn import OpenFlowConnection

    try:
        cfg = load(argv)
        engine, sid = compute_desired(cfg)
    except (ConfigError, OvsdbError, StoreError) as exc:
        print(f"tuplenet check: {exc}", file=sys.stderr)
        return 2
    conn = OpenFlowConnection(cfg.mgmt_socket)
    try:
        conn.start(timeout=5.0)
        installed = conn.dump_cookies()
    except Exception as exc:  # noqa: BLE001
        print(f"tuplenet check: cannot read flows from {cfg.mgmt_socket}: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    desired = engine.desired()
    missing = [f for c, f in desired.items() if c not in installed]
    extra = sorted(set(installed) - desired.keys())
    for f in sorted(missing, key=lambda f: (f.table, -f.priority)):
        print(f"missing: {f.to_text()}")
    for c in extra:
        table, prio = installed[c]
        print(f"extra:   cookie={hex(c)},table={table},priority={prio}")
    print(f"chassis {sid}: {len(desired)} flows desired, {len(installed)} installed, "
          f"{len(missing)} missing, {len(extra)} extra")
    return 1 if missing or extra else 0

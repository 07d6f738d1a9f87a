"""Readiness of switch ports for `tpctl lsp show` and the API: the bound chassis' reports (model/ready.py).

Only the reports of the chassis the shown ports are bound to are read (one read-only transaction per
READ_BATCH chassis), never the whole `communicate/ready/` prefix: a switch on a few hosts costs a few keys
however many hosts the cloud has. A report that does not decode counts as none (`unknown`) and is listed
in the controller's warnings, like any bad record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuplenet.model import LSP, ModelError
from tuplenet.model.keys import ready_key
from tuplenet.model.ready import Report, decode_report, has_readiness, port_state
from tuplenet.store import Op

READ_BATCH = 100  # gets per transaction, under etcd's default --max-txn-ops of 128


def chassis_reports(ctl: Any, chassis: Sequence[str]) -> dict[str, Report | None]:
    """chassis -> its decoded report (None: no report, or an undecodable one)."""
    names = sorted(set(chassis))
    out: dict[str, Report | None] = {}
    for i in range(0, len(names), READ_BATCH):
        part = names[i:i + READ_BATCH]
        kvs, _ = ctl.core.read(*(Op.get(ready_key(n)) for n in part))
        for name, kv in zip(part, kvs, strict=True):
            out[name] = None
            if kv is None:
                continue
            try:
                out[name] = decode_report(kv.value)
            except ModelError as exc:
                ctl.warnings.append(f"{ready_key(name)}: {exc}")
    return out


def port_states(ctl: Any, ports: Sequence[LSP]) -> list[str | None]:
    """`true`/`false`/`unknown` per port (None for router-facing and patch ports), in the order given."""
    reports = chassis_reports(ctl, [p.chassis for p in ports if p.chassis and has_readiness(p)])
    return [port_state(p, reports) for p in ports]


__all__ = ["READ_BATCH", "chassis_reports", "port_states"]

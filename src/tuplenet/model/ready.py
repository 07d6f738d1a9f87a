"""Port readiness reports: which switch ports a chassis has every flow installed for (agent/readiness.py).

Each agent keeps one key, `communicate/ready/<chassis>` = `{"ready": {"<switch>": ["<port>", ...]}}` (JSON,
sorted), under its liveness lease: one write per change of the set (coalesced), never one per port, and a
dead agent's report goes with its lease. `tpctl lsp show` merges it: a port is ready only if the chassis it
is bound to lists it. A tree without reports (0.3 agents) reads as `unknown`. Readers never trust a report:
anything that does not decode is treated as no report (ModelError from `decode_report`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .addr import ModelError
from .entities import LSP

READY, NOT_READY, UNKNOWN = "true", "false", "unknown"
Report = frozenset[tuple[str, str]]  # (switch, port) pairs


def encode_report(ports: Iterable[tuple[str, str]]) -> str:
    """The key's value for these (switch, port) pairs: deterministic, so equal sets give equal bytes."""
    by_ls: dict[str, list[str]] = {}
    for ls, name in ports:
        by_ls.setdefault(ls, []).append(name)
    return json.dumps({"ready": {ls: sorted(names) for ls, names in sorted(by_ls.items())}},
                      separators=(",", ":"))


def decode_report(value: str | bytes) -> Report:
    """(switch, port) pairs of a report; ModelError on anything but the documented shape (extra keys allowed)."""
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"readiness report is not JSON: {str(exc).splitlines()[0][:80]}") from None
    ready = doc.get("ready") if isinstance(doc, dict) else None
    if not isinstance(ready, dict):
        raise ModelError('readiness report has no "ready" object')
    out: set[tuple[str, str]] = set()
    for ls, names in ready.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names) or not ls:
            raise ModelError(f"readiness report: bad port list for switch {ls[:40]!r}")
        out.update((ls, n) for n in names)
    return frozenset(out)


def has_readiness(lsp: LSP) -> bool:
    """Only workload ports get flows of their own to wait for; router-facing and patch ports have none."""
    return not lsp.peer and not lsp.is_patch


def port_state(lsp: LSP, reports: Mapping[str, Report | None]) -> str | None:
    """`true`/`false`/`unknown` (None: no readiness for this kind of port). `reports`: chassis -> its decoded
    report, None or absent when it has none (no agent alive there, a 0.3 agent, or an undecodable one)."""
    if not has_readiness(lsp):
        return None
    if not lsp.chassis:
        return NOT_READY  # bound nowhere: no host has its flows
    report = reports.get(lsp.chassis)
    if report is None:
        return UNKNOWN
    return READY if (lsp.ls, lsp.name) in report else NOT_READY


__all__ = ["NOT_READY", "READY", "UNKNOWN", "Report", "decode_report", "encode_report", "has_readiness",
           "port_state"]

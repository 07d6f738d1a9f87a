"""Names of what the flows only know by number: datapath ids, port ids (an IP's low 16 bits within its
datapath), chassis tunnel IPs. Built once per trace from the logical model."""

from __future__ import annotations

from ..agent.flow import fmt_ip, ip_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PATCH_PORT_ID = 0xFFFF


class Names:
    def __init__(self, facts: dict[tuple, Any]) -> None:
        self.dps: dict[int, tuple[str, str]] = {}
        self.ports: dict[tuple[int, int], str] = {}
        self.chassis_ip: dict[int, str] = {}
        dp_of: dict[tuple[str, str], int] = {}
        for key in sorted(k for k in facts if k[0] in ("LS", "LR")):
            obj = facts[key]
            kind = "switch" if key[0] == "LS" else "router"
            self.dps.setdefault(obj.id, (kind, key[1]))
            dp_of[(key[0], key[1])] = obj.id
        for key in sorted(k for k in facts if k[0] in ("lsp", "lrp")):
            obj = facts[key]
            dp = dp_of.get(("LS" if key[0] == "lsp" else "LR", key[1]))
            if dp is None:
                continue
            pid = PATCH_PORT_ID if obj.ip == "255.255.255.255" else ip_int(obj.ip) & 0xFFFF
            self.ports.setdefault((dp, pid), key[2])
        for key in sorted(k for k in facts if k[0] == "chassis"):
            self.chassis_ip.setdefault(ip_int(facts[key].ip), key[1])

    def datapath(self, dp: int) -> tuple[str, str]:
        """(kind, name): kind is switch, router, or '-' before classification."""
        if not dp:
            return "-", "-"
        return self.dps.get(dp, ("?", f"datapath {dp:#x}"))

    def port(self, dp: int, pid: int) -> str:
        if not pid:
            return "-"
        return self.ports.get((dp, pid), f"port {pid:#x}")

    def chassis_by_ip(self, ip: int) -> str:
        return self.chassis_ip.get(ip, fmt_ip(ip))

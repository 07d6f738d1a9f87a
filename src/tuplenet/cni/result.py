"""What the runtime gets back: the CNI result of ADD, merged into prevResult, in the requested version."""

from __future__ import annotations

from .spec import NetConf, ip_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _ips_for(version: str, ips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """0.3.x/0.4.0 carry "version": "4"|"6" on each IP; 1.x dropped it."""
    out = []
    for ip in ips:
        ip = dict(ip)
        if version.startswith("0."):
            ip.setdefault("version", "6" if ":" in str(ip.get("address", "")) else "4")
        else:
            ip.pop("version", None)
        out.append(ip)
    return out


def add_result(conf: NetConf, ifname: str, netns: str, host_if: str, host_mac: str, ip: str, mac: str) -> dict:
    """Our host and container interfaces, address, gateway and routes appended to prevResult (if any)."""
    prev = conf.prev_result or {}
    interfaces = [i for i in prev.get("interfaces") or [] if isinstance(i, dict)]
    base = len(interfaces)
    interfaces += [{"name": host_if, "mac": host_mac},
                   {"name": ifname, "mac": mac, "sandbox": netns}]
    ips = [i for i in prev.get("ips") or [] if isinstance(i, dict)]
    ips.append({"address": f"{ip}/{conf.prefix_len}", "gateway": ip_text(conf.gateway), "interface": base + 1})
    routes = [r for r in prev.get("routes") or [] if isinstance(r, dict)]
    routes += [r.to_json() for r in conf.routes]
    dns = prev.get("dns") if isinstance(prev.get("dns"), dict) and prev.get("dns") else conf.dns
    out: dict[str, Any] = {"cniVersion": conf.cni_version, "interfaces": interfaces,
                           "ips": _ips_for(conf.cni_version, ips), "routes": routes}
    out["dns"] = dns or {}
    return out


def container_address(conf: NetConf, ifname: str) -> tuple[str, str] | None:
    """(address/len, mac) of `ifname` inside the sandbox according to prevResult, for CHECK."""
    prev = conf.prev_result or {}
    interfaces = prev.get("interfaces") or []
    for ip in prev.get("ips") or []:
        if not isinstance(ip, dict):
            continue
        idx = ip.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(interfaces) and isinstance(interfaces[idx], dict) \
                and interfaces[idx].get("name") == ifname and interfaces[idx].get("sandbox"):
            return str(ip.get("address", "")), str(interfaces[idx].get("mac", ""))
    return None

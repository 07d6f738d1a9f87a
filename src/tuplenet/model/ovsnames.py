"""Which names a patch port may use on a chassis's OVS (pure; shared by tpctl/control and the agent).

A patch lsp becomes two OVS patch ports: `<lsp>` on the integration bridge and `<lsp>-peer` on the peer
bridge. The agent owns those ports, so a name that collides with something it does not own (the
integration bridge itself, its tunnel ports `tupleNet-*`, the peer bridge's own port) would make it delete
or retype that port, and a peer bridge equal to the integration bridge patches br-int to itself.
"""

from __future__ import annotations

from .addr import ModelError

INTEGRATION_BRIDGE = "br-int"
TUNNEL_PORT_PREFIX = "tupleNet-"
PEER_SUFFIX = "-peer"
MAX_PORT_NAME = 64
MAX_IFNAME = 15  # Linux IFNAMSIZ - 1: a bridge has an internal interface of its own name


def _printable(name: str) -> bool:
    return name.isascii() and name.isprintable() and not any(c.isspace() for c in name)


def bridge_problem(bridge: str) -> str | None:
    """Why `bridge` cannot be a patch port's peer bridge, or None."""
    if bridge == INTEGRATION_BRIDGE:
        return f"peer bridge cannot be the integration bridge {INTEGRATION_BRIDGE}"
    if bridge.lower().startswith(TUNNEL_PORT_PREFIX.lower()):
        return f"peer bridge {bridge} uses the reserved prefix {TUNNEL_PORT_PREFIX}"
    if (not _printable(bridge) or not 1 <= len(bridge) <= MAX_IFNAME or bridge in (".", "..")
            or "/" in bridge or ":" in bridge):
        return (f"invalid OVS bridge name {bridge!r}: 1-{MAX_IFNAME} printable ASCII characters without "
                "spaces, '/' or ':'")
    return None


def patch_port_problem(name: str, bridge: str) -> str | None:
    """Why a patch lsp `name` towards OVS bridge `bridge` must be refused (or ignored by the agent), or None."""
    if problem := bridge_problem(bridge):
        return problem
    for port in (name, name + PEER_SUFFIX):
        if not _printable(port) or len(port) > MAX_PORT_NAME or port in (".", ".."):
            return (f"invalid OVS port name {port!r}: at most {MAX_PORT_NAME} printable ASCII characters "
                    "without spaces")
        if port in (INTEGRATION_BRIDGE, bridge):
            return f"patch port name {port} is the name of a bridge"
        if port.lower().startswith(TUNNEL_PORT_PREFIX.lower()):
            return f"patch port name {port} uses the reserved prefix {TUNNEL_PORT_PREFIX}"
    return None


def check_patch_port(name: str, bridge: str) -> None:
    """ModelError with the reason if `patch_port_problem` finds one."""
    if problem := patch_port_problem(name, bridge):
        raise ModelError(problem)

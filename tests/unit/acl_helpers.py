"""ACL facts for pure tests: every action, both directions, a switch rule, a port group rule, an address set
and a conjunction."""

from __future__ import annotations

from tuplenet.model.acl import AddressSet, PortGroup, make_acl, parse_net


def acl_facts() -> dict[tuple, object]:
    """Rules on the tutorial topology (tests/unit/topo_helpers.tutorial_facts)."""
    rules = {
        ("acl", "LS-A", "web"): ("LS-A", False, dict(direction="in", priority="100", action="allow-related",
                                                      src="$clients", proto="tcp", dport="80-90")),
        ("acl", "LS-A", "ssh"): ("LS-A", False, dict(direction="out", priority="90", action="drop", proto="tcp",
                                                      dport="22")),
        ("acl", "LS-B", "dns"): ("LS-B", False, dict(direction="in", priority="5", action="allow", proto="udp",
                                                      dport="53", dst="10.10.2.0/24")),
        ("pg_acl", "pg", "rej"): ("pg", True, dict(direction="out", priority="7", action="reject", src="@pg")),
    }
    f: dict[tuple, object] = {k: make_acl(p, k[2], kw, on_pg=pg) for k, (p, pg, kw) in rules.items()}
    f[("address_set", "clients")] = AddressSet("clients", tuple(sorted(parse_net(f"10.9.0.{i}") for i in range(1, 9))))
    f[("port_group", "pg")] = PortGroup("pg", (("LS-A", "vm1"), ("LS-B", "vm3")))
    return f

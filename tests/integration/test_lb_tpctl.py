"""tpctl lb against a real etcd: add / show / backends / delete, the record written, and one-line errors
that leave the tree unchanged."""

from __future__ import annotations

import json

from test_tpctl_helpers import fails, ok

from tuplenet.store import Store


def test_lb_commands(etcd, prefix):
    s = Store(etcd.endpoint, prefix=prefix)
    ok(etcd, prefix, "ls", "add", "LS-A")
    ok(etcd, prefix, "lr", "add", "LR-1", "hv1")
    out = ok(etcd, prefix, "lb", "add", "ls", "LS-A", "web", "10.10.1.100:80", "10.10.1.2:8080,10.10.1.3:8080",
             "check=http:/healthz", "interval=2")
    assert out == "load balancer web created (10.10.1.100:80/tcp, 2 backends)\n"
    assert s.get("entity_view/LS/LS-A/lb/web").value == (
        "vip=10.10.1.100,port=80,protocol=tcp,backends=10.10.1.2:8080;10.10.1.3:8080,affinity=0,"
        "check=http:/healthz,interval=2,rise=2,fall=2")
    ok(etcd, prefix, "lb", "a", "lr", "LR-1", "dns", "10.9.9.9:53", "protocol=udp", "affinity=30")
    shown = json.loads(ok(etcd, prefix, "lb", "show", "ls", "LS-A", "-j"))
    assert shown == [{"switch": "LS-A", "name": "web", "vip": "10.10.1.100", "port": 80, "protocol": "tcp",
                      "backends": ["10.10.1.2:8080", "10.10.1.3:8080"], "affinity": 0, "check": "http:/healthz",
                      "interval": 2, "rise": 2, "fall": 2, "down": []}]
    s.put("communicate/lb_health/LS/LS-A/web/10.10.1.3:8080", "state=down,chassis=hv2")
    assert "  - down    : 10.10.1.3:8080\n" in ok(etcd, prefix, "lb", "show", "ls", "LS-A", "web")
    assert json.loads(ok(etcd, prefix, "lb", "show", "ls", "LS-A", "-j"))[0]["down"] == ["10.10.1.3:8080"]
    assert "  - backends: \n" in ok(etcd, prefix, "lb", "show", "lr", "LR-1", "dns")
    assert ok(etcd, prefix, "lb", "backend-add", "lr", "LR-1", "dns", "10.9.0.2:5353") == \
        "load balancer dns: 1 backends\n"
    assert ok(etcd, prefix, "lb", "backend-del", "ls", "LS-A", "web", "10.10.1.2:8080") == \
        "load balancer web: 1 backends\n"
    before = s.get_prefix("")[0]
    fails(etcd, prefix, "lb", "add", "ls", "LS-A", "web2", "10.10.1.100:80", match="already load balancer web")
    fails(etcd, prefix, "lb", "add", "ls", "LS-A", "web", "10.10.1.101:80", match="exists")
    fails(etcd, prefix, "lb", "add", "ls", "LS-X", "w", "10.10.1.101:80", match="LS-X")
    fails(etcd, prefix, "lb", "add", "ls", "LS-A", "w", "10.10.1.101:80", "protocol=sctp", match="bad protocol")
    fails(etcd, prefix, "lb", "add", "ls", "LS-A", "w", "10.10.1.101", match="VIP must be IP:PORT")
    fails(etcd, prefix, "lb", "add", "xx", "LS-A", "w", "10.10.1.101:1", match="ls or lr")
    fails(etcd, prefix, "lb", "add", "ls", "LS-A", "w", "10.10.1.101:1", "foo=1", match="unknown option foo")
    fails(etcd, prefix, "lb", "backend-add", "ls", "LS-A", "web", "10.10.1.3:8080", match="already in")
    fails(etcd, prefix, "lb", "backend-del", "ls", "LS-A", "web", "10.10.1.9:8080", match="not in")
    fails(etcd, prefix, "lb", "del", "ls", "LS-A", "nope", match="unable to get load balancer nope")
    assert s.get_prefix("")[0] == before
    assert ok(etcd, prefix, "lb", "del", "ls", "LS-A", "web") == "load balancer web deleted\n"
    assert ok(etcd, prefix, "lb", "show", "ls", "LS-A") == "empty data set\n"
    s.delete_prefix("")
    s.close()

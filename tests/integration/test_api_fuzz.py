"""Fuzz the HTTP API in-process (ASGI, in-memory store): random methods, paths, queries, headers and bodies
never get a 500, errors are one-line JSON, a refused request changes nothing, and accepted writes keep the
topology free of IP and id conflicts."""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_api_helpers import AsgiDriver

from fuzz_settings import fuzz
from tuplenet.api import Auth, create_app
from tuplenet.control import Controller
from tuplenet.control.memstore import MemStore
from tuplenet.model import LSP, decode_kv, validate_name
from tuplenet.records import replace
from tuplenet.store import KV

TOKEN, READ_TOKEN = "full-token", "read-token"
ALLOWED = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def seeded_store() -> MemStore:
    """A small topology every example starts from (names the path strategy also draws)."""
    store = MemStore()
    ctl = Controller(store)
    ctl.add_switch("ls1")
    ctl.add_switch("ls2")
    ctl.add_switch_port("ls1", "p1", "10.0.0.2", chassis="hv1")
    ctl.add_switch_port("ls1", "vm", "10.0.0.3", chassis="hv1", requested_chassis="hv2")  # a port being moved
    ctl.add_router("lr1")
    ctl.link("lr1", "ls1", "10.0.0.1/24")
    ctl.add_router_port("lr1", "up", "192.168.1.2/24")
    ctl.add_static_route("lr1", "r1", "0.0.0.0/0", "192.168.1.1", "up")
    ctl.add_nat("lr1", "n1", "10.0.0.0/24", "snat", "192.168.1.2")
    ctl.add_patch_port("ls2", "pp", "hv1", "br-ex")
    store.put("entity_view/chassis/hv1", "ip=192.168.100.1,tick=1")
    return store


SEED = seeded_store()
APP = create_app(SEED, Auth([TOKEN], [READ_TOKEN]))
DRIVE = AsgiDriver(APP)


def fresh_store() -> MemStore:
    store = MemStore()
    store.data, store.rev = dict(SEED.data), SEED.rev
    return store


NAMES = ["ls1", "ls2", "lr1", "p1", "pp", "up", "r1", "n1", "hv1", "ls1_to_lr1", "lr1_to_ls1", "192.168.100.1",
         "new", " new ", "a,b", "", " ", "..", "%", "x" * 300, "\u00e9t\u00e9", "\x00", "\t"]
SEGMENTS = ["switches", "routers", "ports", "patch-ports", "links", "routes", "nats", "chassis", "toolbox",
            "sync-device-map", "rebuild-ip-book", "ip-conflicts", "id-conflicts", "decode-id-string", "export",
            "import", "graph", "health", "openapi.json"]
# Route templates, so most requests reach a handler rather than a 404.
TEMPLATES = ["switches", "switches/{}", "switches/{}/ports", "switches/{}/ports/{}", "switches/{}/patch-ports",
             "switches/{}/ports/{}/requested-chassis",
             "routers", "routers/{}", "routers/{}/links", "routers/{}/ports", "routers/{}/ports/{}",
             "routers/{}/routes", "routers/{}/routes/{}", "routers/{}/nats", "routers/{}/nats/{}", "chassis",
             "chassis/{}", "toolbox/sync-device-map", "toolbox/rebuild-ip-book", "toolbox/ip-conflicts",
             "toolbox/id-conflicts", "toolbox/decode-id-string", "export", "import", "graph", "health", "trace",
             "switches/{}/lbs", "switches/{}/lbs/{}", "switches/{}/lbs/{}/backends", "routers/{}/lbs",
             "routers/{}/lbs/{}", "routers/{}/lbs/{}/backends", "address-sets", "address-sets/{}",
             "address-sets/{}/addresses", "port-groups", "port-groups/{}", "port-groups/{}/ports", "switches/{}/acls",
             "switches/{}/acls/{}", "port-groups/{}/acls", "port-groups/{}/acls/{}"]
VALUES = ["10.0.0.2", "10.0.0.9", "10.9.0.2", "10.0.0.0/24", "10.0.0.1/24", "0.0.0.0/0", "10.0.0.0/33",
          "1.2.3", "255.255.255.255", "f2:01:0a:00:00:09", "ff:ff:ff:ff:ff:ff", "zz", "snat", "dnat", "SNAT",
          "ls1", "ls2", "lr1", "p1", "up", "hv1", "br-ex", "new", "a,b", "a/b", " ", "", "x" * 300, "\n",
          None, True, 0, -1, 2**70, 1.5, [], ["ls1"], {}, {"a": 1}, 80, 65536, "tcp", "udp", "http:/h",
          ["10.0.0.2:80"], ["10.0.0.2:80", "10.0.0.2:80"], ["10.0.0.2"], "10.0.0.100", "$s", "@g", "in", "out",
          "drop", "allow-related", "80-90", 100, ["ls1/p1"]]
FIELDS = ["name", "ip", "mac", "peer", "chassis", "subnet", "gateway", "peer_bridge", "switch", "cidr",
          "next_hop", "outport", "xlate_type", "xlate_ip", "id", "vip", "port", "protocol", "backends", "affinity",
          "check", "interval", "rise", "fall", "add", "remove", "addresses", "ports", "direction", "priority",
          "action", "src", "dst", "proto", "sport", "dport", "requested_chassis"]
IMPORT_KEYS = ["entity_view/LS/", "entity_view/LR/", "entity_view/LS/ls1/lsp/", "entity_view/LR/lr1/lrp/",
               "entity_view/LR/lr1/lsr/", "entity_view/LR/lr1/lnat/", "entity_view/chassis/", "globals/",
               "ip_book/LS/", ""]
IMPORT_VALUES = ["id=7", "id=0", "id=", "ip=10.0.0.9,mac=f2:01:0a:00:00:09", "ip=10.0.0.2,mac=zz",
                 "ip=10.0.0.5,prefix=24,mac=f2:01:0a:00:00:05,peer=", "ip=1.2.3.4,tick=5",
                 "ip=0.0.0.0,prefix=0,next_hop=10.0.0.9,outport=up", "x"]
QUERY_KEYS = ["recursive", "format", "overwrite", "resume", "value", "x", "src_port", "dst_ip", "proto", "ttl",
              "frame"]
QUERY_VALUES = ["true", "false", "1", "0", "yes", "dot", "text", "png", "", "OjAAAAEAAAAAAAAAEAAAAAEA", "!!",
                "ls1/p1", "p1", "ls2/pp", "10.0.0.1", "192.168.1.1", "tcp", "arp", "999", "0800", "ffff"]
METHODS = ["GET", "GET", "POST", "POST", "POST", "DELETE", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]
CONTENT_TYPES = [b"application/json", b"application/json", b"text/plain", b"application/x-www-form-urlencoded",
                 None]


def junk(rng: random.Random, n: int = 10) -> str:
    """Short text from a mix of ASCII, separators, controls and non-ASCII (surrogates excluded)."""
    alphabet = "ab/,.% :\t\n\x00\x7f=\u00e9\u4e2d\U0001f600"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(n)))


def pick(rng: random.Random, choices: list, junk_rate: float = 0.15):
    return junk(rng) if rng.random() < junk_rate else rng.choice(choices)


def random_path(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.8:
        template = rng.choice(TEMPLATES)
        names = [pick(rng, NAMES) for _ in range(template.count("{}"))]
        return "/api/v2/" + template.format(*names)
    if roll < 0.95:
        return "/api/v2/" + "/".join(pick(rng, SEGMENTS + NAMES, 0.3) for _ in range(rng.randrange(6)))
    return "/" + junk(rng, 30)


def random_body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.7:
        doc = {pick(rng, FIELDS, 0.05): pick(rng, VALUES) for _ in range(rng.randrange(6))}
        return json.dumps(doc).encode()
    if roll < 0.8:
        return json.dumps(rng.choice([None, 1, "x", [1, {"name": "ls9"}], [[]], {"name": {"name": "x"}}])).encode()
    if roll < 0.93:
        lines = [f"{pick(rng, IMPORT_KEYS)}{pick(rng, NAMES[:12])}\t{pick(rng, IMPORT_VALUES)}"
                 for _ in range(rng.randrange(6))]
        return "\n".join(lines).encode()
    return rng.randbytes(rng.randrange(24))


PORTS = [("ls1", "p1"), ("ls1", "vm"), ("ls2", "pp"), ("ls1", "ls1_to_lr1"), ("ls1", "nope"), ("nope", "p1")]
CHASSIS = ["hv1", "hv2", "hv3", " hv3 ", "\u00e9", "x" * 300] * 2 + ["", " ", "a,b", "a/b", "\n", None, None, 5, True,
                                                                  [], {}, ["hv1"]]


def requested_chassis_request(rng: random.Random) -> tuple[str, str, bytes]:
    """A move (POST .../requested-chassis) or a port create carrying `requested_chassis`, mostly of a shape
    that gets the drawn value to the control layer (random bodies and names almost never do)."""
    doc: dict = {"requested_chassis": pick(rng, CHASSIS, 0.05)}
    if rng.random() < 0.5:
        switch, port = rng.choice(PORTS)
        path = f"/api/v2/switches/{switch}/ports/{port}/requested-chassis"
    else:
        path = f"/api/v2/switches/{rng.choice(['ls1', 'ls1', 'ls2', 'nope'])}/ports"
        doc["name"] = rng.choice(["new", "new", "new", "p1", " new2 ", "a,b"])
        field, value = rng.choice([("ip", "10.0.0.9"), ("ip", "10.0.0.2"), ("ip", "10.0.0.256"),
                                   ("subnet", "10.0.0.0/24"), ("subnet", "10.0.0.0/33")])
        doc[field] = value
    if rng.random() < 0.15:
        doc[pick(rng, FIELDS)] = pick(rng, VALUES)  # e.g. a peer (router-facing: refused), or an unknown field
    return "POST", path, json.dumps(doc).encode()


def random_request(rng: random.Random) -> tuple[str, str, bytes, str | None, bytes | None, bytes]:
    if rng.random() < 0.08:
        method, path, body = requested_chassis_request(rng)
        return method, path, b"", rng.choice([TOKEN, TOKEN, TOKEN, READ_TOKEN]), b"application/json", body
    query = urlencode({pick(rng, QUERY_KEYS, 0.05): pick(rng, QUERY_VALUES) for _ in range(rng.randrange(3))})
    token = rng.choice([TOKEN, TOKEN, TOKEN, TOKEN, TOKEN, READ_TOKEN, None, junk(rng, 20)])
    path = random_path(rng)
    if path.endswith("/trace") and rng.random() < 0.6:  # a trace that gets as far as walking flows
        query = urlencode({"src_port": pick(rng, ["ls1/p1", "p1", "ls2/pp", "ls1/ls1_to_lr1"]),
                           "dst_ip": pick(rng, ["10.0.0.1", "10.0.0.2", "192.168.1.1", "8.8.8.8"]),
                           "proto": pick(rng, ["icmp", "tcp", "udp", "arp"]),
                           "ttl": pick(rng, ["64", "1", "0"]), "format": pick(rng, ["json", "text"])})
    return (rng.choice(METHODS), path, query.encode(), token, rng.choice(CONTENT_TYPES), random_body(rng))


def check_error_body(raw: bytes) -> None:
    doc = json.loads(raw)
    assert set(doc) == {"error", "kind"} and doc["error"] and "\n" not in doc["error"], doc


def invariants(store: MemStore, before: dict[str, KV], path: str) -> None:
    ctl = Controller(store)
    assert ctl.find_ip_conflicts() == [] and ctl.find_id_conflicts() == []
    for port in (decode_kv(k, kv.value) for k, kv in store.data.items() if "/lsp/" in k):
        if isinstance(port, LSP) and port.requested_chassis:  # a valid name, on a VM port
            assert validate_name(port.requested_chassis) == port.requested_chassis, port
            assert not port.is_patch and not port.peer, port
    if path.endswith("/requested-chassis"):  # a move rewrites that one field of one port
        changed = [k for k in store.data.keys() | before.keys() if store.data.get(k) != before.get(k)]
        assert len(changed) <= 1, changed
        for k in changed:
            old, new = decode_kv(k, before[k].value), decode_kv(k, store.data[k].value)
            assert replace(old, requested_chassis=new.requested_chassis) == new and old.extra == new.extra


@pytest.mark.fuzz
@fuzz
@given(seed=st.integers(0, 2**64 - 1))
def test_requests_never_fail_the_server(seed):
    """One drawn seed builds the whole request (hypothesis' own per-draw cost would be ten times the
    request's); the falsifying seed reproduces the request exactly."""
    method, path, query, token, content_type, body = random_request(random.Random(seed))
    store = fresh_store()
    APP.state.store = store
    before = dict(store.data)
    headers = [(b"authorization", b"Bearer " + token.encode())] if token is not None else []
    if content_type:
        headers.append((b"content-type", content_type))
    status, _, raw = DRIVE(method, path, query, headers, body)
    assert status in ALLOWED, (method, path, query, token, body, status, raw)
    if status >= 400:
        if method != "HEAD":
            check_error_body(raw)
        assert store.data == before, ("a refused request changed the store", method, path, body)
    if token not in (TOKEN, READ_TOKEN):
        assert status == 401
    elif token == READ_TOKEN and method in WRITES:
        assert status == 403
    if status < 300 and method in WRITES:
        invariants(store, before, path)


HEADERS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"Bearer", b"Bearer ", b"bearer " + TOKEN.encode(), b"Bearer  " + TOKEN.encode(),
                     b"Basic " + TOKEN.encode(), b"Bearer " + TOKEN.encode()[:-1], b"Bearer " + READ_TOKEN.encode()]),
    st.binary(max_size=8).map(lambda b: b"Bearer " + TOKEN.encode() + b),
)


@pytest.mark.fuzz
@fuzz
@given(header=HEADERS, method=st.sampled_from(METHODS))
def test_authorization_header(header, method):
    """Only `Bearer <a configured token>` passes (a read token only reads); anything else is a 401 before any
    route runs."""
    APP.state.store = fresh_store()
    status, headers, raw = DRIVE(method, "/api/v2/switches", b"", [(b"authorization", header)], b"{}")
    scheme, _, rest = header.partition(b" ")
    if scheme.lower() == b"bearer" and rest.strip() == TOKEN.encode():
        assert status not in (401, 403)
    elif scheme.lower() == b"bearer" and rest.strip() == READ_TOKEN.encode():
        # The middleware lets a read token do GET/HEAD only; routing then decides (no HEAD route: 405).
        assert status == {"GET": 200, "HEAD": 405}.get(method, 403), (method, status)
    else:
        assert status == 401 and headers[b"www-authenticate"].startswith(b"Bearer"), (header, status)
        check_error_body(raw)

"""Fuzz: any request body into any tpcnm method gets a JSON answer, errors only as protocol errors.

Each example sends one request to a driver that already has a router, a network and an endpoint (a copy of
one prepared store), so bodies that reach existing objects are exercised as well as ones that miss. Values
come from a pool of meaningful and hostile ones (ids that exist, addresses in and out of the subnet, wrong
types, huge and multi-line strings) so that most requests get past parsing into the driver."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cnm_driver import EID, NID, FakeHost, create_ep, create_net, make_driver

from fuzz_settings import fuzz
from tuplenet.cnm.driver import CnmDriver
from tuplenet.cnm.protocol import INTERNAL, ROUTES, handle
from tuplenet.control import Controller

FIELDS = ["NetworkID", "EndpointID", "Options", "IPv4Data", "IPv6Data", "Interface", "SandboxKey", "Address",
          "AddressIPv6", "MacAddress", "Pool", "Gateway", "com.docker.network.generic",
          "com.docker.network.enable_ipv6", "switch", "router", "mtu", "PoolID", "SubPool", "V6",
          "RequestAddressType"]
scalars = st.sampled_from([
    NID, EID, "10.99.0.0/24", "10.99.0.1/24", "10.99.0.3/24", "10.99.0.2", "0.0.0.0/0", "f2:01:0a:63:00:09", "",
    "R1", "web", "1500", "99", "a,b", "/", "::1/64", "com.docker.network.gateway", "10.99.0.0/30", "x" * 300,
    "a\nb", "\u00e9", None, True, False, 0, -1, 1.5, 2 ** 70, [], {}])
flat = st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=3)
values = st.one_of(scalars, flat, st.lists(flat, max_size=2))
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=4).map(lambda d: json.dumps(d).encode()),
    scalars.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=16))
paths = st.sampled_from([*ROUTES, "/NetworkDriver.Nope", "/"])


def _prepared() -> Any:
    d, _ = make_driver()
    d.ctl.add_router("R1")
    assert create_net(d, generic={"router": "R1"}) == {} and "Err" not in create_ep(d)
    return d.store


BASE = _prepared()


def check(status: int, answer: Any) -> None:
    assert status in (200, 400, 404)
    assert isinstance(answer, dict)
    json.dumps(answer)
    if "Err" in answer:
        assert isinstance(answer["Err"], str) and "\n" not in answer["Err"]
        assert not answer["Err"].startswith(INTERNAL), answer
    else:
        assert status == 200


@pytest.mark.fuzz
@fuzz
@given(paths, bodies)
def test_any_body_gets_a_protocol_answer(path: str, body: bytes) -> None:
    store = copy.copy(BASE)
    store.data = dict(BASE.data)
    host = FakeHost()
    host.ports[EID] = (EID, "f2:01:0a:63:00:02", 1400)
    d = CnmDriver(Controller(store), host, "hv1", ready_timeout=1.0)
    check(*handle(d, path, body))

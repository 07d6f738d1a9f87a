"""tpcni's pure layer: parsing what the runtime sends, the error answer, and results (with a fuzz target)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.cni.errors import CniError
from tuplenet.cni.main import handle
from tuplenet.cni.result import add_result
from tuplenet.cni.spec import parse_conf, parse_env

GOOD = {"cniVersion": "1.0.0", "name": "tn", "type": "tpcni", "switch": "LS-A", "subnet": "10.10.1.0/24"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}


def _noop(env, conf):
    return None


def test_defaults_and_0_3_aliases() -> None:
    c = parse_conf({"cniVersion": "0.4.0", "name": "n", "switchname": "LS-A", "subnet": "10.20.1.1/24",
                    "etcd_cluster": "a:1,b:2", "data_store_prefix": "/x"}, {"OVS_RUNDIR": "/r"})
    assert (c.switch, c.etcd_endpoints, c.etcd_prefix, c.ovsdb) == ("LS-A", ["a:1", "b:2"], "/x", "/r/db.sock")
    assert (c.prefix_len, c.gateway, c.mtu, c.readiness_timeout) == (24, (10 << 24) | (20 << 16) | (1 << 8) | 1,
                                                                     1400, 10.0)
    assert [r.to_json() for r in c.routes] == [{"dst": "0.0.0.0/0"}]


def test_gateway_and_routes_any_prefix() -> None:
    c = parse_conf({**GOOD, "subnet": "10.0.0.0/12", "gateway": "10.15.255.254",
                    "routes": [{"dst": "192.168.0.0/16", "gw": "10.0.0.9"}]})
    assert c.prefix_len == 12 and [r.to_json() for r in c.routes] == [{"dst": "192.168.0.0/16", "gw": "10.0.0.9"}]
    with pytest.raises(CniError) as e:
        parse_conf({**GOOD, "subnet": "10.0.0.0/12", "gateway": "10.16.0.1"})
    assert e.value.code == 7 and "gateway" in e.value.msg


@pytest.mark.parametrize("env, code, words", [
    ({}, 4, "CNI_COMMAND"),
    ({**ENV, "CNI_COMMAND": "add"}, 4, "CNI_COMMAND"),
    ({**ENV, "CNI_CONTAINERID": ""}, 4, "CNI_CONTAINERID is required"),
    ({**ENV, "CNI_CONTAINERID": "-x"}, 4, "not a valid container id"),
    ({**ENV, "CNI_IFNAME": "a" * 16}, 4, "CNI_IFNAME"),
    ({**ENV, "CNI_IFNAME": "eth 0"}, 4, "CNI_IFNAME"),
    ({**ENV, "CNI_NETNS": ""}, 4, "CNI_NETNS is required"),
    ({**ENV, "CNI_NETNS": "relative"}, 4, "absolute"),
])
def test_bad_env(env: dict[str, str], code: int, words: str) -> None:
    status, out = handle(env, json.dumps(GOOD).encode(), _noop)
    assert status == 1 and out["code"] == code and words in out["msg"], out


def test_del_needs_no_netns() -> None:
    assert parse_env({**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}).netns == ""


def test_version_answers_without_config() -> None:
    assert handle({"CNI_COMMAND": "VERSION"}, b"", _noop)[1]["supportedVersions"][-1] == "1.1.0"


def test_error_json_speaks_the_requested_version() -> None:
    status, out = handle(ENV, json.dumps({**GOOD, "cniVersion": "0.4.0", "mtu": "big"}).encode(), _noop)
    assert status == 1 and out == {"cniVersion": "0.4.0", "code": 7,
                                   "msg": "mtu must be a number from 68 to 65535, not 'big'"}


def test_result_appends_to_prev_result_and_converts_versions() -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "x"}], "ips": [{"address": "10.9.0.2/24",
                                                                           "interface": 0}],
            "routes": [{"dst": "10.9.0.0/16"}], "dns": {"nameservers": ["1.1.1.1"]}}
    c = parse_conf({**GOOD, "cniVersion": "0.4.0", "prevResult": prev})
    r = add_result(c, "eth0", "/ns", "tpx", "02:00:00:00:00:01", "10.10.1.2", "f2:01:0a:0a:01:02")
    assert [i["name"] for i in r["interfaces"]] == ["x", "tpx", "eth0"]
    assert r["ips"][1] == {"address": "10.10.1.2/24", "gateway": "10.10.1.1", "interface": 2, "version": "4"}
    assert r["ips"][0]["version"] == "4" and r["routes"] == [{"dst": "10.9.0.0/16"}, {"dst": "0.0.0.0/0"}]
    assert r["dns"] == {"nameservers": ["1.1.1.1"]}


# ---- fuzz: whatever arrives, the answer is CNI error JSON (never a traceback, never an internal error) ----

# Sampled values rather than free text: generation dominates the cost, and these reach every branch.
_leaf = st.sampled_from([None, True, False, 0, -1, 1.5, 2**40, 70000, "", "x", "1.0.0", "/", "a,b", " ", "\x00",
                         "10.0.0.1", "1.2.3", "01.2.3.4", "9.9.9.9/33", "1.1.1.1/", "é", "h:1"])
_json = st.one_of(_leaf, st.lists(_leaf, max_size=3), st.dictionaries(st.sampled_from(["dst", "gw", "a", ""]), _leaf,
                                                                       max_size=3))
_fields = ["cniVersion", "name", "type", "switch", "switchname", "subnet", "gateway", "routes", "mtu",
           "etcdEndpoints", "etcd_cluster", "etcdPrefix", "etcdTimeout", "ovsdbSocket", "readinessTimeout",
           "txChecksumOffload", "dns", "prevResult", "bridge", "cni.dev/valid-attachments"]
_plausible = st.sampled_from(["1.0.0", "0.4.0", "1.1.0", "0.2.0", "", "tn", "LS-A", "a/b", "10.10.1.0/24",
                              "10.10.1.1", "10.10.1.0/31", "300.1.1.1/8", "0.0.0.0/0", "h:1,h:2", 1400, 0, -1,
                              True, [], {}, [{"dst": "0.0.0.0/0"}], [{"dst": 5}],
                              [{"containerID": "a", "ifname": "e"}], [{"containerID": 1}]])
_config = st.dictionaries(st.sampled_from(_fields), _plausible | _json, max_size=8).map(lambda d: {**GOOD, **d})
_stdin = st.one_of(_config.map(lambda d: json.dumps(d).encode()), st.binary(max_size=32),
                   _json.map(lambda v: json.dumps(v).encode()))
_envtext = st.sampled_from(["", "eth0", "abc", "/run/netns/x", "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION",
                            "a" * 16, ".", "..", "x:y", "e/0", "-a", "a b", "é", "x" * 201, "\x00", "rel/x"])
_env = st.fixed_dictionaries({}, optional={k: _envtext for k in (*ENV, "CNI_ARGS", "CNI_PATH")})


@pytest.mark.fuzz
@fuzz
@given(env=_env, data=_stdin)
def test_fuzz_only_cni_answers(env: dict[str, str], data: bytes) -> None:
    status, out = handle(env, data, _noop)
    if status == 0:
        assert out is None or "supportedVersions" in out
        return
    assert status == 1 and isinstance(out["code"], int) and out["code"] != 100, out
    assert isinstance(out["msg"], str) and "\n" not in out["msg"] and out["cniVersion"]
    json.dumps(out)

"""tpcni's pure layer: parsing what the runtime sends, the error answer, and results (with a fuzz target)."""

from __future__ import annotations

import json
import random

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
# One drawn seed per case builds the input from pools of values that reach every branch: hypothesis' own
# generation of nested structures costs ~10 ms a case on this machine, this costs ~0.1 ms.

_LEAF = [None, True, False, 0, -1, 1.5, 2**40, 70000, "", "x", "1.0.0", "/", "a,b", " ", "\x00", "10.0.0.1",
         "1.2.3", "01.2.3.4", "9.9.9.9/33", "1.1.1.1/", "é", "h:1", "0.4.0", "0.2.0", "tn", "LS-A", "a/b",
         "10.10.1.0/24", "10.10.1.1", "10.10.1.0/31", "300.1.1.1/8", "0.0.0.0/0", "h:1,h:2", 1400, 68, 65536]
_FIELDS = ["cniVersion", "name", "type", "switch", "switchname", "subnet", "gateway", "routes", "mtu",
           "etcdEndpoints", "etcd_cluster", "etcdPrefix", "etcdTimeout", "ovsdbSocket", "readinessTimeout",
           "txChecksumOffload", "dns", "prevResult", "bridge", "cni.dev/valid-attachments", "etcdCACert",
           "etcdUser"]
_ENVTEXT = ["", "eth0", "abc", "/run/netns/x", "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "a" * 16, ".",
            "..", "x:y", "e/0", "-a", "a b", "é", "x" * 201, "\x00", "rel/x", "IgnoreUnknown=1;A=b"]


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10)
    if depth < 2 and kind == 0:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 2 and kind == 1:
        return {rng.choice(["dst", "gw", "containerID", "ifname", "a", ""]): _value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    if kind == 2:
        return "".join(chr(rng.randrange(1, 0x250)) for _ in range(rng.randrange(12)))
    return rng.choice(_LEAF)


def _case(seed: int) -> tuple[dict[str, str], bytes]:
    rng = random.Random(seed)
    if rng.random() < 0.7:  # mostly a valid environment, so the configuration parser gets the work
        env = {**ENV, "CNI_COMMAND": rng.choice(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"])}
        if rng.random() < 0.3:
            env[rng.choice([*ENV, "CNI_ARGS"])] = rng.choice(_ENVTEXT)
    else:
        env = {k: rng.choice(_ENVTEXT) for k in (*ENV, "CNI_ARGS", "CNI_PATH") if rng.random() < 0.8}
    shape = rng.randrange(10)
    if shape == 0:
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    elif shape == 1:
        data = json.dumps(_value(rng)).encode()
    else:
        conf = dict(GOOD)
        for _ in range(rng.randrange(6)):
            conf[rng.choice(_FIELDS)] = _value(rng)
        if rng.random() < 0.2:
            conf.pop(rng.choice(list(conf)), None)
        data = json.dumps(conf).encode()
        if rng.random() < 0.05:
            data = data[:rng.randrange(len(data))]
    return env, data


@pytest.mark.fuzz
@fuzz
@given(seed=st.integers(0, 2**63))
def test_fuzz_only_cni_answers(seed: int) -> None:
    env, data = _case(seed)
    status, out = handle(env, data, _noop)
    if status == 0:
        assert out is None or "supportedVersions" in out
        return
    assert status == 1 and isinstance(out["code"], int) and out["code"] != 100, (env, data, out)
    assert isinstance(out["msg"], str) and "\n" not in out["msg"] and out["cniVersion"], (env, data, out)
    json.dumps(out)


def test_process_answers_garbage_with_error_json() -> None:
    """The executable itself: invalid UTF-8 on stdin, no environment -> one JSON line, exit 1, no traceback."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tuplenet.cni.main"], input=b"\xff\xfe{", capture_output=True,
                       env={"CNI_COMMAND": "ADD", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["code"] == 4 and "CNI_CONTAINERID" in out["msg"]


@pytest.mark.parametrize("command, version", [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "0.4.0")])
def test_commands_newer_than_the_config_version_are_refused(command: str, version: str) -> None:
    status, out = handle({**ENV, "CNI_COMMAND": command}, json.dumps({**GOOD, "cniVersion": version}).encode(),
                         _noop)
    assert status == 1 and out["code"] == 1 and f"{command} needs cniVersion" in out["msg"], out


def test_name_checks_match_the_regular_expressions_they_replace() -> None:
    """spec checks ids and names without `re` (its import is ~4 ms of every plugin start): same verdicts as
    the expressions it used, for every code point and around it."""
    import re

    from tuplenet.cni.spec import has_bad_name_char, is_id

    bad, ident = re.compile(r"[/,\s\x00-\x1f\x7f]"), re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
    for c in map(chr, range(0x110000)):
        for text in (c, "a" + c, c + "a", "ab" + c):
            assert has_bad_name_char(text) == bool(bad.search(text)), repr(text)
            assert is_id(text) == bool(ident.match(text)), repr(text)
    assert not is_id("") and not has_bad_name_char("")

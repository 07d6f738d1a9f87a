"""ACL, address set and port group records (model/acl.py): keys, round trips, one-line errors; a decoder
fuzz that reaches valid records and every error path."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.model import ModelError, decode, decode_kv, entity_key, parse_key
from tuplenet.model.acl import ACL, AddressSet, Cidr, PortGroup, Ref, make_acl


def test_keys_and_round_trips() -> None:
    assert parse_key("entity_view/LS/ls1/acl/r1") == ("acl", ("ls1", "r1"))
    assert parse_key("entity_view/port_group/web/acl/r1") == ("pg_acl", ("web", "r1"))
    assert parse_key("entity_view/address_set/as1") == ("address_set", ("as1",))
    assert parse_key("entity_view/port_group/web") == ("port_group", ("web",))
    assert parse_key("entity_view/LR/lr1/acl/r1") is None
    rule = decode_kv("entity_view/LS/ls1/acl/r1", "direction=in,priority=100,action=allow-related,src=$web,"
                     "dst=10.0.0.0/8,proto=tcp,sport=1024-65535,dport=80,note=kept")
    assert isinstance(rule, ACL) and rule.key == "entity_view/LS/ls1/acl/r1"
    assert (rule.src, rule.dst) == (Ref("$", "web"), Ref("", cidr=Cidr(0x0A000000, 8)))
    assert (rule.proto, rule.sport, rule.dport) == (6, (1024, 65535), (80, 80))
    assert decode("acl", ("ls1", "r1"), rule.to_value()) == rule and "note=kept" in rule.to_value()
    pg_rule = decode_kv("entity_view/port_group/pg/acl/r2", "direction=out,priority=0,action=reject,src=@pg")
    assert pg_rule.on_pg and pg_rule.key == entity_key("pg_acl", ("pg", "r2")) == "entity_view/port_group/pg/acl/r2"
    s = decode_kv("entity_view/address_set/as1", "addresses=10.0.0.2 10.1.0.0/16  10.0.0.2")
    assert isinstance(s, AddressSet) and s.addresses_text == "10.0.0.2 10.1.0.0/16"
    assert decode_kv("entity_view/address_set/e", "") == AddressSet("e", ())
    g = decode_kv("entity_view/port_group/pg", "ports=ls2/b ls1/a")
    assert isinstance(g, PortGroup) and g.ports == (("ls1", "a"), ("ls2", "b")) and g.to_value() == "ports=ls1/a ls2/b"


@pytest.mark.parametrize(("value", "error"), [
    ("priority=1,action=drop", "missing required field direction"),
    ("direction=up,priority=1,action=drop", "bad direction"),
    ("direction=in,priority=40000,action=drop", "bad priority"),
    ("direction=in,priority=1,action=accept", "bad action"),
    ("direction=in,priority=1,action=drop,src=10.0.0.1/8", "host bits set"),
    ("direction=in,priority=1,action=drop,src=$", "bad src"),
    ("direction=in,priority=1,action=drop,dport=80", "need proto=tcp or proto=udp"),
    ("direction=in,priority=1,action=drop,proto=tcp,dport=90-80", "empty"),
    ("direction=in,priority=1,action=drop,proto=tcp,dport=70000", "bad dport"),
    ("direction=in,priority=1,action=drop,proto=sctp", "bad proto"),
])
def test_bad_rules_give_one_line_reasons(value: str, error: str) -> None:
    with pytest.raises(ModelError, match=error) as exc:
        decode("acl", ("ls1", "r1"), value)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("entity_view/LS/ls1/acl/r1: ")


def test_bad_sets_and_groups() -> None:
    with pytest.raises(ModelError, match="bad addresses"):
        decode("address_set", ("s",), "addresses=10.0.0.1 nope")
    with pytest.raises(ModelError, match="bad ports"):
        decode("port_group", ("g",), "ports=ls1")


_FIELDS = {"direction": ["in", "out", "IN", "both", ""], "priority": ["0", "32767", "32768", "-1", "1_0", "７"],
           "action": ["allow", "allow-related", "drop", "reject", "deny"],
           "src": ["10.0.0.1", "10.0.0.0/8", "10.0.0.1/8", "$web", "@pg", "$", "@a/b", "1.2.3", "0.0.0.0/0"],
           "dst": ["192.168.0.0/16", "$x y", "@pg", "10.0.0.0/33"],
           "proto": ["tcp", "udp", "icmp", "6", "256", "x"],
           "sport": ["1", "1-2", "2-1", "65535", "65536", "-", "a"], "dport": ["80", "0-65535", "80-", " 8 "],
           "addresses": ["10.0.0.1 10.0.0.0/24", "x", "", "10.0.0.1/32"], "ports": ["a/b c/d", "a", "a/", ""]}


_KINDS = ["acl", "pg_acl", "address_set", "port_group"]
_JUNK = ["", ",", ",x", ",=1", ",src=", "\n", "é", ",priority=5"]
_NAMES = sorted(_FIELDS)


@pytest.mark.fuzz
@fuzz
@given(seed=st.integers(0, 2**63))
def test_decoder_fuzz(seed: int) -> None:
    """Records built from the decoder's own fields (one cheap draw per case: a seed): valid ones read back
    the same after a rewrite, invalid ones give one line starting with the key."""
    rnd = random.Random(seed)
    kind = rnd.choice(_KINDS)
    pairs = [(k, rnd.choice(_FIELDS[k])) for k in rnd.sample(_NAMES, rnd.randint(0, 8))]
    if kind in ("acl", "pg_acl") and rnd.random() < 0.6:  # mostly complete rules, to reach the match fields
        pairs = [("direction", rnd.choice(["in", "out"])), ("priority", str(rnd.randint(0, 32767))),
                 ("action", rnd.choice(["allow", "allow-related", "drop", "reject"]))] + pairs[3:]
    raw = ",".join(f"{k}={v}" for k, v in pairs) + rnd.choice(_JUNK)
    ident = ("p", "r") if kind in ("acl", "pg_acl") else ("n",)
    try:
        obj = decode(kind, ident, raw)
    except ModelError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(entity_key(kind, ident))
        return
    assert decode(kind, ident, obj.to_value()) == obj  # what we write reads back the same


def test_make_acl_keeps_unknown_fields_as_extra() -> None:
    a = make_acl("ls1", "r", {"direction": "in", "priority": "1", "action": "drop", "zz": "1"})
    assert a.extra == (("zz", "1"),)

"""Fuzz the gateway's untrusted inputs: packet-in frames and registers from the outside switch, and the
state file read at start-up. Nothing may raise, and nothing unsolicited may become an entry."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_gateway_arp import GW_IP, OUT_ID, _generate, _gw

from fuzz_settings import fuzz
from tuplenet.agent import tables as T
from tuplenet.agent.gateway_arp import arp_frame, entries_from, parse_arp

pytestmark = pytest.mark.fuzz

# Pools of values built once: few draws per example keep 10,000 examples within the CI budget.
_IPS = ["172.16.0.1", "172.16.0.2", "172.16.0.3", "172.16.0.77", "10.0.0.1", "0.0.0.0"]
_MACS = [bytes.fromhex(m) for m in ("f201ac100002", "f201ac100003", "02ee00000001", "ffffffffffff", "000000000000")]
_ARPS = [arp_frame(op, sha, spa, tha, tpa) for op in (1, 2, 7) for sha in _MACS[2:] for spa in _IPS[:4]
         for tha in _MACS[:3] for tpa in _IPS[1:3]]
# Single integer draws decoded into values: lists/binaries of draws cost hypothesis several times more.
_frame = st.one_of(st.integers(0, 2**384 - 1).map(lambda v: v.to_bytes(48, "big")[: v % 49]),
                   st.integers(0, len(_ARPS) * 65 - 1).map(lambda i: _ARPS[i // 65][: i % 65]))
_regs = st.sampled_from([{"metadata": dp, T.R_NEXT_HOP: nh, T.R_OUT_LRP_IP: lrp}
                         for dp in (OUT_ID, 0, 2**64 - 1) for nh in (0, 0xAC100001, 0xAC100063, 2**32 - 1)
                         for lrp in (0xAC100002, 0xAC100003, 0x0A000001)] + [{}])


_SHARED: list = []


def _fresh(tmp_path_factory) -> tuple:
    """One gateway for the whole run (building a view per example would dominate), reset per example."""
    if not _SHARED:
        _SHARED.extend(_gw(tmp_path_factory.getbasetemp())[:2])
    gw, view = _SHARED
    for k in [k for k in view.facts if k[0] == "neigh"]:
        view.apply(k, None, set())
    gw.entries.clear()
    gw.pending.clear()
    gw._asked.clear()
    return gw, view


@fuzz
@given(data=_frame, md=_regs, asked=st.booleans())
def test_packet_ins_never_raise_and_only_answers_are_learned(tmp_path_factory, data, md, asked) -> None:
    gw, view = _fresh(tmp_path_factory)
    if asked:
        gw.on_generate(_generate("172.16.0.2", GW_IP))
    pin = SimpleNamespace(data=data, metadata=md)
    gw.on_generate(pin)
    gw.on_learn(pin)
    assert parse_arp(data) is None or len(parse_arp(data)) == 5
    gw.step(set())
    for key in gw.entries:  # learned only for a router port that asked for exactly that address
        assert asked and key == ("LR-e1", "LR-e1_out", GW_IP)
    assert {k for k in view.facts if k[0] == "neigh"} == {("neigh", *k) for k in gw.entries}


_FIELDS = ("lr", "lrp", "ip", "mac", "learned")
_VALUES = {"lr": ["LR-e1", 3], "lrp": ["LR-e1_out", None], "ip": ["172.16.0.1", "x.y"],
           "mac": ["02:ee:00:00:00:01", "02:EE:00:00:00:01", "zz", 5],
           "learned": [1_000_000.0 - 10, 1_000_000.0 - 300, 1_000_000.0 + 1, float("nan"), "3", True]}
_POOL = [dict(zip(_FIELDS, vals, strict=True)) for vals in itertools.product(*(_VALUES[f] for f in _FIELDS))]
_POOL += [{k: v for k, v in e.items() if k != drop} for e in _POOL[:40] for drop in _FIELDS]


def _saved(i: int) -> list:
    """0-3 entries of the pool, decoded from one integer."""
    n, i = i % 4, i // 4
    out = []
    for _ in range(n):
        out.append(_POOL[i % len(_POOL)])
        i //= len(_POOL)
    return out


@fuzz
@given(saved=st.integers(0, 4 * len(_POOL) ** 3).map(_saved))
def test_state_file_entries_are_valid_or_skipped(saved) -> None:
    got = entries_from(saved, 1_000_000.0, 300.0)  # other shapes of the file: test_gateway_arp
    for (lr, lrp, ip), e in got.items():
        assert (lr, lrp) == ("LR-e1", "LR-e1_out") and parse_arp(arp_frame(1, b"\0" * 6, ip, b"\0" * 6, ip))
        assert e.mac == "02:ee:00:00:00:01" and 0 <= 1_000_000.0 - e.learned < 300.0

"""Group codec, pure: a description reply built from our own group-mod parses back to GroupDesc.of (what
a reconcile compares), and hostile reply bytes raise ValueError/struct.error, never anything else."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.agent.flow import Output, Resubmit, ToGroup
from tuplenet.agent.openflow import codec as c
from tuplenet.agent.openflow import groups as gr
from tuplenet.agent.outputs import Bucket, Group, group_id, group_is_ours


def _desc_reply(groups: list[Group]) -> bytes:
    """An OFPMP_GROUP_DESC reply part as OVS would send it: the group-mod body re-framed per group."""
    parts = b""
    for g in groups:
        mod = gr.group_mod(gr.OFPGC_ADD, g)
        buckets = mod[16:]
        parts += struct.pack("!HBxI", 8 + len(buckets), gr.group_type(g), g.group_id) + buckets
    return struct.pack("!HH4x", gr.OFPMP_GROUP_DESC, 0) + parts


def _random_group(rnd: random.Random) -> Group:
    """One group drawn from a seed (hypothesis draws only the seed: cheap generation, 10k cases fast)."""
    def action() -> object:
        kind = rnd.randrange(3)
        if kind == 0:
            return Output(rnd.randint(1, 0xFEFF))
        return Resubmit(rnd.randint(0, 254)) if kind == 1 else ToGroup(rnd.randint(0, 0xFFFFFF00))

    bs = tuple(Bucket(tuple(action() for _ in range(rnd.randrange(4))), rnd.choice([0, 1, rnd.randint(0, 0xFFFF)]),
                      rnd.choice([None, rnd.randint(1, 0xFEFF)])) for _ in range(rnd.randrange(5)))
    return Group(rnd.randint(0, 0xFFFFFF00), rnd.choice(["all", "select", "indirect", "fast_failover"]), bs)


@pytest.mark.fuzz
@fuzz
@given(st.integers(0, 2**64))
def test_description_of_our_group_mod_parses_to_group_desc_of(seed: int) -> None:
    rnd = random.Random(seed)
    gs = [_random_group(rnd) for _ in range(rnd.randrange(4))]
    assert list(gr.iter_group_descs(_desc_reply(gs))) == [gr.GroupDesc.of(g) for g in gs]


@pytest.mark.fuzz
@fuzz
@given(st.binary(max_size=200))
def test_hostile_group_desc_bytes_raise_only_value_errors(data: bytes) -> None:
    try:
        list(gr.iter_group_descs(data))
    except (ValueError, struct.error):
        pass


def test_group_mod_framing_and_ids() -> None:
    g = Group(group_id(3), "select", (Bucket((Output(1),)), Bucket((Output(2),), weight=5)))
    m = gr.group_mod(gr.OFPGC_MODIFY, g, xid=9)
    version, mtype, length, xid, command, gtype, gid = struct.unpack_from("!BBHIHBxI", m)
    assert (version, mtype, length, xid, command, gtype, gid) == (c.OFP_VERSION, 15, len(m), 9, 1, 1, g.group_id)
    assert [b[0] for b in gr.GroupDesc.of(g).buckets] == [1, 5]  # select buckets default to weight 1
    assert group_is_ours(g.group_id) and not group_is_ours(7)
    assert len(gr.group_delete(g.group_id)) == 16
    with pytest.raises(ValueError):
        gr.group_mod(gr.OFPGC_ADD, g._replace(type="round_robin"))
    with pytest.raises(ValueError):
        group_id(1 << 16)
    assert g.text() == (f"group_id={g.group_id},type=select,bucket=actions=output:1,"
                        "bucket=weight:5,actions=output:2")

"""Fuzz: `tpctl lb ...` argument vectors through tpctl's command table and handlers (argparse itself is fuzzed
with every command in test_tpctl_fuzz.py) against the in-memory store: success, or an error tpctl prints as
one clean line (never a Python bug), and every record left in the tree decodes."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tpctl_fuzz import BUG, sandbox  # noqa: F401 - sandbox is a fixture

from fuzz_settings import fuzz
from tuplenet.cli import commands, tpctl
from tuplenet.control import Controller
from tuplenet.control.lbs import Lbs, build
from tuplenet.control.memstore import MemStore
from tuplenet.model import ModelError, decode_kv

TOKENS = ["ls", "lr", "LS", "switch", "router", "xx", "ls1", "lr1", "nope", "web", "dns", "new",
          "10.0.0.100:80", "10.0.0.100:0", "10.0.0.100:65536", "10.0.0.100", ":80", "1.2.3.4:53", "10.0.0.2:8080",
          "10.0.0.2:8080,10.0.0.3:8080", "10.0.0.2:8080;10.0.0.2:8080", "10.0.0.2:x", "protocol=udp",
          "protocol=sctp", "affinity=60", "affinity=-1", "check=tcp", "check=http:/h", "check=http:x",
          "interval=0", "interval=5", "rise=3", "fall=101", "bogus=1", "=1", "protocol=udp", "a,b", "", " ",
          "é", "\x00", "-j", "10.0.0.256:80", "10.0.0.3:8080"]
ACTIONS = ["add", "a", "del", "d", "show", "s", "backend-add", "backend-del", "nope"]


def _seed() -> MemStore:
    ctl = Controller(MemStore())
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "p1", "10.0.0.2")
    ctl.add_router("lr1", "hv1")
    Lbs(ctl.core).add_lb(build("LS", "ls1", "web", "10.0.0.100:80", "10.0.0.2:8080"))
    return ctl.store


SEED = _seed()


@pytest.mark.fuzz
@fuzz
@given(action=st.sampled_from(ACTIONS), args=st.lists(st.sampled_from(TOKENS), max_size=9))
def test_lb_arguments_give_clean_errors(sandbox, action, args):  # noqa: F811
    store = MemStore()
    store.data, store.rev = dict(SEED.data), SEED.rev
    sandbox["ctl"] = Controller(store)
    argv = ["lb", action, *args]
    positional = [a for a in args if a != "-j"]  # -j is an option to argparse
    try:
        group, act = tpctl._resolve("lb", action)
        _aliases, lo, hi, usage, _argtext, handler = commands.COMMANDS[(group, act)]
        if not lo <= len(positional) <= hi:
            raise tpctl.UsageError(usage)
        with contextlib.redirect_stdout(io.StringIO()):
            handler(commands.Ctx("", "", 1.0, "-j" in args), positional)
    except Exception as exc:  # noqa: BLE001 - what tpctl.main would print
        line = " ".join(tpctl._describe(exc).split())
        assert line and not BUG.match(line), (argv, line)
    for key, kv in store.data.items():
        if key.startswith("entity_view/"):
            try:
                decode_kv(key, kv.value)
            except ModelError as exc:
                raise AssertionError(f"{argv}: {exc}") from None

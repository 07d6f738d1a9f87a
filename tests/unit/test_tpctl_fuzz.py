"""Fuzz: tpctl argument vectors through the real entry point (parser, dispatcher, control layer) against the
in-memory store: exit 0, or exit 1 with one clean line on stderr - never a traceback or a Python exception
name - and the tree left readable (every record decodes, ids unique, no import marker left behind).

Each example starts from a copy of one small topology so commands reach existing objects as well as missing
ones. File arguments come from a fixed list inside a temporary directory (tpctl may write files)."""

from __future__ import annotations

import functools
import io
import os
import re
import sys
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.cli import commands, tpctl
from tuplenet.control import Controller
from tuplenet.control.memstore import MemStore
from tuplenet.model import IMPORT_MARKER_KEY, LSP, ModelError, decode_kv, validate_name
from tuplenet.records import replace
from tuplenet.store import KV

ALPHABET = "abhlpsrx019:.-_+=,/ \t\né１٣"
TOKENS = ["ls1", "ls2", "p1", "p2", "lr1", "lr2", "hv1", "hv2", "r1", "n1", "pp", "ls1_to_lr1", "lr1_to_ls1",
          "10.0.0.5", "10.0.0.2", "10.0.0.256", "１0.0.0.1", "10.0.1.1/24", "0.0.0.0/0", "10.0.0.1/+2_4",
          "10.0.0.1/33", "f2:01:00:00:00:09", "F2-01-00-00-00-0A", "zz:00", "snat", "DNAT", "nat", "br-ex",
          "br-int", "tupleNet-1", "", " ", "-", "-r", "-y", "--yes", "-j", "--json", "--overwrite", "--resume",
          "--abandon", "--", "-x", "a,b", "a/b", "OjAAAAEAAAAAAAAAEAAAAAEA", "!!", "255.255.255.255"]
GROUPS = [g for g in tpctl.GROUPS if g != "trace"] + ["nope", "l"]  # trace reads etcd itself (own tests)
FILES = ["-", "out.txt", "missing.txt", "g.dot", "sub/", "seed.txt"]
STDIN = ["", "yes\n", "no\n", "entity_view/LS/z\tid=5\n", "garbage\n", "entity_view/LS/ls1\tid=1\n",
         "entity_view/LS/ls1/lsp/q\tip=10.0.0.9,mac=f2:01:00:00:00:09\n", "entity_view/LS/y\tid=x\n"]
BUG = re.compile(r"^(TypeError|KeyError|AttributeError|IndexError|AssertionError|RuntimeError|NameError|"
                 r"UnboundLocalError|ZeroDivisionError|RecursionError|OverflowError|UnicodeError|StopIteration)\b")

WEIRD = ["\t", "\n", "a\nb", "x" * 80, "é", "٣", "=", "a=b", "--x", "-1", "+1", "1_0", "\x00", "\u3000", "/",
         "10.0.0.1/24/1", "10.0.0.1/", "ff:ff:ff:ff:ff:ff", "tupleNet-flowbased", "p1-peer", "0", "65536"]
tokens = st.sampled_from(TOKENS + WEIRD)
FLAGS = [[]] * 6 + [["-j"], ["-r"], ["-r", "-y"], ["--overwrite"], ["--resume"], ["--abandon"], ["-x"], ["--clear"]]
GLOBALS = [[]] * 8 + [["-j"], ["-t", "1"], ["-p", "other"], ["-v"], ["-h"], ["--bogus"]]
# (group, action or alias, min args, max args) of every real command, plus nonsense heads.
HEADS = [(g, x, lo, hi) for (g, a), (aliases, lo, hi, *_) in commands.COMMANDS.items() for x in (a, *aliases)]
HEADS += [(g, a, 0, 6) for g in GROUPS for a in ("", "nope", "add", "s")]
FILE_COMMANDS = ("export", "import", "graph")
FIRST = {"ls": "ls1", "lsp": "ls1", "patchport": "ls1", "ch": "hv1", "lr": "lr1", "lrp": "lr1", "lsr": "lr1",
         "lnat": "lr1"}


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """Real commands (and some nonsense) with about the right number of arguments; few draws, as each costs."""
    group, action, lo, hi = draw(st.sampled_from(HEADS))
    n = draw(st.integers(max(0, lo - 1), hi + 1))
    args = draw(st.lists(st.sampled_from(FILES) if group in FILE_COMMANDS else tokens, min_size=n, max_size=n))
    if args and group in FIRST and draw(st.booleans()):
        args[0] = FIRST[group]  # an existing object, to get past the lookups
    flags = draw(st.sampled_from(FLAGS))
    if group == "lsp" and draw(st.booleans()):  # lsp add's option, its value drawn, as one word or two
        value = draw(tokens)
        flags = flags + draw(st.sampled_from([["--requested-chassis", value], [f"--requested-chassis={value}"]]))
    return draw(st.sampled_from(GLOBALS)) + [group] + ([action] if action else []) + args + flags


def _seed() -> MemStore:
    ctl = Controller(MemStore())
    ctl.add_switch("ls1")
    ctl.add_switch_port("ls1", "p1", "10.0.0.2")
    ctl.add_switch_port("ls1", "p2", "10.0.0.3", chassis="hv1", requested_chassis="hv2")  # a port being moved
    ctl.add_router("lr1", "hv1")
    ctl.link("lr1", "ls1", "10.0.0.1/24")
    ctl.add_static_route("lr1", "r1", "0.0.0.0/0", "10.0.0.254", "lr1_to_ls1")
    ctl.add_nat("lr1", "n1", "10.0.0.0/24", "snat", "1.1.1.1")
    ctl.add_patch_port("ls1", "pp", "hv1", "br-ex")
    ctl.store.put("entity_view/chassis/hv1", "ip=192.168.0.1,tick=5")
    return ctl.store


SEED = _seed()


@pytest.fixture(scope="module")
def sandbox():
    """tpctl wired to a MemStore (per example), a cached parser, and a scratch working directory."""
    state: dict = {}
    saved = (commands.Ctx.ctl, tpctl.build_parser, os.getcwd())
    commands.Ctx.ctl = property(lambda self: state["ctl"])  # type: ignore[method-assign,assignment]
    tpctl.build_parser = functools.lru_cache(maxsize=1)(tpctl.build_parser)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="tpctl-fuzz-") as tmp:
        os.chdir(tmp)
        with open("seed.txt", "w") as fh:
            fh.write("entity_view/LS/s9\tid=9\nentity_view/LS/s9/lsp/a\tip=10.9.0.2,mac=f2:01:00:00:00:01\n")
        try:
            yield state
        finally:
            os.chdir(saved[2])
            commands.Ctx.ctl, tpctl.build_parser = saved[0], saved[1]  # type: ignore[method-assign]


def _run(argv: list[str], stdin: str) -> tuple[int, str, str]:
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        rc = tpctl.main(argv)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.fuzz
@fuzz
@given(argv=argvs(), stdin=st.sampled_from(STDIN))
def test_tpctl_arguments_give_clean_errors(sandbox, argv, stdin):
    check_run(sandbox, argv, stdin)


REQUESTED = ["hv1", "hv2", " hv2 ", "", " ", "a,b", "a/b", "\t", "a\nb", "x" * 80, "é", "=", "-", "--clear", "-j"]


@st.composite
def requested_argvs(draw: st.DrawFn) -> list[str]:
    """`lsp add ... --requested-chassis X` and `lsp set-requested`, shaped to get past the parser and the
    lookups (the general target rarely does), with the chassis drawn."""
    value = draw(st.sampled_from(REQUESTED) | tokens)
    switch = draw(st.sampled_from(["ls1", "ls1", "ls1", "nope", "a/b"]))
    if draw(st.booleans()):
        port = draw(st.sampled_from(["p9", "p9", "p1", " p9 ", "a,b"]))
        ip = draw(st.sampled_from(["10.0.0.9", "10.0.0.9", "10.0.0.2", "10.0.0.256", "255.255.255.255"]))
        more = draw(st.sampled_from([[], [], ["f2:01:00:00:00:09"], ["", "lr1_to_ls1"], ["", "br-ex"], ["-"]]))
        opt = draw(st.sampled_from([["--requested-chassis", value], [f"--requested-chassis={value}"], []]))
        return ["lsp", draw(st.sampled_from(["add", "a"])), switch, port, ip, *more, *opt]
    port = draw(st.sampled_from(["p1", "p2", "p2", "pp", "ls1_to_lr1", "p9"]))
    tail = draw(st.sampled_from([[value], [value], ["--clear"], [value, "--clear"], [], [value, value]]))
    return [*draw(st.sampled_from([[], ["-j"]])), "lsp", "set-requested", switch, port, *tail]


@pytest.mark.fuzz
@fuzz
@given(argv=requested_argvs())
def test_requested_chassis_arguments(sandbox, argv):
    """Random requested chassis at creation and on existing ports: a valid name lands on a VM port and only
    there, anything else is one clean line and nothing written."""
    check_run(sandbox, argv, "")


def check_run(sandbox: dict, argv: list[str], stdin: str) -> None:
    store = MemStore()
    store.data, store.rev = dict(SEED.data), SEED.rev
    ctl = sandbox["ctl"] = Controller(store)
    rc, out, err = _run(argv, stdin)
    assert rc in (0, 1), (argv, rc, err)
    if rc == 1 and not (argv and argv[0] in ("-h", "--help")):
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].strip(), (argv, err)
        assert "Traceback" not in err and not BUG.match(lines[0]), (argv, err)
    elif rc == 0:
        assert "Traceback" not in err
    if rc == 1 and "lsp" in argv:
        assert store.rev == SEED.rev, (argv, err)  # a refused lsp command (one transaction) writes nothing
    if store.rev == SEED.rev:
        return  # nothing written: the seed is known good
    assert IMPORT_MARKER_KEY not in store.data
    for key, kv in store.data.items():
        if key.startswith("entity_view/"):
            try:
                obj = decode_kv(key, kv.value)
            except ModelError as exc:  # tpctl wrote something it cannot read back
                raise AssertionError(f"{argv}: {exc}") from None
            if isinstance(obj, LSP):
                check_requested(argv, obj, SEED.data.get(key))
    assert ctl.find_id_conflicts() == [] and ctl.find_ip_conflicts() == []


def check_requested(argv: list[str], port: LSP, seeded: KV | None) -> None:
    """A requested chassis tpctl wrote is a valid name on a VM port; set-requested changes nothing else."""
    if port.requested_chassis:
        assert validate_name(port.requested_chassis) == port.requested_chassis, (argv, port)
        assert not port.is_patch and not port.peer, (argv, port)
    if "set-requested" in argv and seeded is not None:
        before = decode_kv(port.key, seeded.value)
        assert replace(before, requested_chassis=port.requested_chassis) == port, (argv, before, port)
        assert before.extra == port.extra and before.chassis == port.chassis, (argv, before, port)

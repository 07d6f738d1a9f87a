"""tpctl's argparse-free trace path (cli/quickargs.py) answers only when argparse would answer the same: for
any command line it returns None or exactly argparse's namespace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.cli import tpctl

PARSER = tpctl.build_parser(only_trace=True)

TOKENS = ["trace", "-e", "--endpoints", "-p", "--prefix", "-j", "--json", "-t", "--timeout", "-v", "--version",
          "--cacert", "--cert", "--key", "--user", "--password", "--simulate", "-s", "--src-port", "--dst-ip",
          "--dst-mac", "--src-ip", "--src-mac", "--proto", "--ttl", "--sport", "--dport", "--icmp-type", "--frame",
          "--header", "--brief", "--wait", "--detect", "--pairs", "--rounds", "-h", "--help", "--", "-", "--sim",
          "--dst", "--ttl=5", "--ttl=x", "--dst-ip=10.0.0.1", "--simulate=1", "-e=h:1", "-s=LS-A/vm1", "-sLS-A/vm1",
          "-jv", "LS-A/vm1", "10.10.2.2", "h:2379", "/p", "5", "-1", "0x10", "2.5", "nan", "", " ", "a b", "-x y",
          "tcp", "1e3", "\u00e9"]


def argparse_view(argv: list[str]) -> dict | None:
    try:
        return vars(PARSER.parse_args(argv))
    except (tpctl.UsageError, SystemExit):
        return None


def quick_view(argv: list[str]) -> dict | None:
    opts = tpctl._quick_trace(argv)
    return None if opts is None else vars(opts)


@pytest.mark.parametrize("argv", [
    ["trace", "--simulate", "-s", "LS-A/vma", "--dst-ip", "10.10.4.10"],
    ["-e", "127.0.0.1:2379", "-p", "/bench-trace/", "trace", "--simulate", "-s", "LS-A/vma", "--dst-ip", "10.0.0.1"],
    ["-j", "-t", "2.5", "--user", "u:p", "trace", "-j", "--src-port=LS-A/vm1", "--ttl", "3", "--frame", "00ff",
     "--proto", "tcp", "--brief", "--wait", "1"],
    ["-p", "trace", "trace", "-s", "LS-A/vm1"],  # a prefix named like the command
])
def test_plain_lines_skip_argparse_and_match_it(argv: list[str]) -> None:
    quick = quick_view(argv)
    assert quick is not None and quick == argparse_view(argv)


@pytest.mark.parametrize("argv", [
    ["trace", "--sim", "-s", "x"], ["trace", "-h"], ["trace", "--detect"], ["trace", "--ttl", "-1"],
    ["trace", "--ttl", "x"], ["--simulate", "trace"], ["trace", "-sLS-A/vm1"], ["trace", "-e", "x"],
    ["trace", "extra"], ["-e"], ["ls", "show"], [],
])
def test_anything_unusual_goes_to_argparse(argv: list[str]) -> None:
    assert quick_view(argv) is None


VALUES = ["LS-A/vm1", "10.10.2.2", "h:2379", "/p", "5", "-1", "0x10", "2.5", "", "a b", "tcp", "trace", "-j", "x=y"]
GLOBAL_VALUED = ["-e", "--endpoints", "-p", "--prefix", "-t", "--timeout", "--cacert", "--cert", "--key", "--user",
                 "--password", "-s", "--ttl"]
TRACE_VALUED = ["-s", "--src-port", "--dst-ip", "--dst-mac", "--src-ip", "--src-mac", "--proto", "--ttl", "--sport",
                "--dport", "--icmp-type", "--frame", "--header", "--wait", "--pairs", "--rounds", "-e", "--detect"]
GLOBAL_FLAGS = ["-j", "--json", "-v", "--version", "--simulate"]
TRACE_FLAGS = ["--simulate", "--brief", "-j", "--json", "-v", "--detect"]


def chunks(valued: list[str], flags: list[str]) -> list[list[str]]:
    """Options with their values (also joined by '='), flags, and a few stray tokens: what a line is made of."""
    out = [[o, v] for o in valued for v in VALUES]
    out += [[f"{o}={v}"] for o in valued if o.startswith("--") for v in VALUES]
    out += [[f] for f in flags] * 10
    return out + [[t] for t in TOKENS[::4]]


def line(parts: tuple[list[list[str]], list[list[str]]]) -> list[str]:
    return [*(t for p in parts[0] for t in p), "trace", *(t for p in parts[1] for t in p)]


STRUCTURED = st.tuples(st.lists(st.sampled_from(chunks(GLOBAL_VALUED, GLOBAL_FLAGS)), max_size=4),
                       st.lists(st.sampled_from(chunks(TRACE_VALUED, TRACE_FLAGS)), max_size=5)).map(line)
NOISE = st.lists(st.one_of(st.sampled_from(TOKENS), st.text("-=trace.sx0123 ", max_size=6)), max_size=10)
LINES = st.one_of(STRUCTURED, NOISE)


@pytest.mark.fuzz
@fuzz
@given(LINES)
def test_fuzz_quick_parse_is_argparse_or_nothing(argv: list[str]) -> None:
    quick = quick_view(argv)
    if quick is not None:
        expected = argparse_view(argv)
        assert expected is not None, argv
        assert {k: repr(v) for k, v in quick.items()} == {k: repr(v) for k, v in expected.items()}, argv

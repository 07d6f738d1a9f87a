"""tpctl: the TupleNet 0.3 admin CLI (same commands, arguments and messages), plus --json, export, import.

Exit status 0 on success, 1 on any error with one line on stderr. Heavy modules (store, control) are imported
only when a command needs them: tpctl is run in loops by scripts and must start fast.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # argparse is loaded when a parser is built: `tpctl --version` never builds one
if TYPE_CHECKING:
    import argparse
    from typing import Any

GROUPS = {
    "ls": "operate on logical switch",
    "lsp": "operate on logical switch port",
    "patchport": "operate on patch port (switch port bridged to an OVS bridge on one chassis)",
    "lr": "operate on logical router",
    "lrp": "operate on logical router port",
    "lsr": "operate on logical static route",
    "lnat": "operate on logical NAT",
    "lb": "operate on load balancers (VIP:port -> backends on a switch or router, docs/lb.md)",
    "mirror": "operate on port mirrors (copies of a port's frames to a local port or an ERSPAN/Geneve collector)",
    "acl": "operate on ACL rules of a switch (ls) or a port group (pg), docs/acl.md",
    "pg": "operate on port groups (named sets of switch ports that ACLs attach to and match as @NAME)",
    "as": "operate on address sets (named IP/CIDR lists that ACLs match as $NAME)",
    "edge": "operate on edges: roads from the central router to physical networks, ECMP with BFD (docs/edges.md)",
    "ch": "operate on chassis",
    "toolbox": "misc tools",
    "export": "write every object under entity_view/ as '<key>TAB<value>' lines to FILE or stdout",
    "import": "validate then write objects from an export file (nothing is written if any record is bad)",
    "graph": "draw the topology: text on stdout, or Graphviz to FILE (.dot, or .png/.svg with dot installed)",
}


class UsageError(Exception):
    pass


def _parser_class() -> type[argparse.ArgumentParser]:
    """argparse's parser with errors raised as UsageError (one line on stderr, exit 1), not printed."""
    global _PARSER
    if _PARSER is None:
        import argparse

        class _Parser(argparse.ArgumentParser):
            def error(self, message: str) -> None:  # type: ignore[override]
                raise UsageError(message)

        _PARSER = _Parser
    return _PARSER


_PARSER: type[argparse.ArgumentParser] | None = None


GLOBAL_OPTIONS = (
    (("-e", "--endpoints"), {"default": "localhost:2379", "help": "etcd endpoints, comma separated"}),
    (("-p", "--prefix"), {"default": "/tuplenet", "help": "key prefix in etcd"}),
    (("-j", "--json"), {"action": "store_true", "help": "output as JSON"}),
    (("-t", "--timeout"), {"type": float, "default": 5.0, "help": "seconds to wait for etcd (default 5)"}),
    (("-v", "--version"), {"action": "store_true", "help": "print the version"}),
)
COMMON_OPTIONS = ((("-j", "--json"), {"dest": "json_leaf", "action": "store_true", "help": "output as JSON"}),)

# Global options that take a value: skipped when looking for the command name before parsing.
_VALUE_OPTIONS = frozenset({"-e", "--endpoints", "-p", "--prefix", "-t", "--timeout", "--cacert", "--cert", "--key",
                            "--user", "--password"})


def _command_of(argv: list[str]) -> str | None:
    """The command word, found without a parser (None if unsure): `trace` builds only its own parser."""
    it = iter(argv)
    for tok in it:
        if tok in _VALUE_OPTIONS:
            next(it, None)
        elif not tok.startswith("-"):
            return tok
    return None


def _quick_trace(argv: list[str]) -> Any:
    """`tpctl [options] trace [options]` as argparse would parse it, without argparse; None when unsure."""
    from tuplenet.store.security_options import OPTIONS as SECURITY_OPTIONS

    from .quickargs import parse
    from .trace import OPTIONS as TRACE_OPTIONS

    return parse(argv, (*GLOBAL_OPTIONS, *SECURITY_OPTIONS), "trace", (*COMMON_OPTIONS, *TRACE_OPTIONS),
                 {"group": "trace"})


def build_parser(only_trace: bool = False) -> argparse.ArgumentParser:
    """tpctl's parser; `only_trace` leaves out the 0.3 commands (tpctl trace has a start-up budget)."""
    parser_cls = _parser_class()
    p = parser_cls(prog="tpctl", description="TupleNet logical topology admin tool")
    for flags, kw in GLOBAL_OPTIONS:
        p.add_argument(*flags, **kw)
    from tuplenet.store.security import add_arguments as add_etcd_security

    add_etcd_security(p)  # --cacert --cert --key --user --password, as etcdctl spells them
    common = parser_cls(add_help=False)
    for flags, kw in COMMON_OPTIONS:
        common.add_argument(*flags, **kw)
    groups = p.add_subparsers(dest="group", metavar="COMMAND", parser_class=parser_cls)
    sub: dict[str, argparse._SubParsersAction] = {}
    for (group, action), (aliases, _lo, _hi, usage, argtext, _h) in _commands(only_trace):
        if group not in sub:
            gp = groups.add_parser(group, help=GROUPS[group], parents=[common] if not action else [])
            if not action:
                _leaf(gp, group, argtext)
                continue
            sub[group] = gp.add_subparsers(dest="action", metavar="ACTION", parser_class=parser_cls)
        leaf = sub[group].add_parser(action, aliases=list(aliases), parents=[common], help=usage)
        _leaf(leaf, group, argtext, action)
    from .trace import add_parser as add_trace

    add_trace(groups, common)
    return p


def _commands(none: bool) -> list:
    if none:
        return []
    from .commands import COMMANDS

    return list(COMMANDS.items())


def _leaf(parser: argparse.ArgumentParser, group: str, argtext: str, action: str = "") -> None:
    parser.add_argument("args", nargs="*", metavar=argtext or "-")
    if group == "lsp" and action == "add":
        parser.add_argument("--requested-chassis", metavar="CHASSIS",
                            help="the chassis the port goes to: peers reach it there before the host claims it")
    if group == "lsp" and action == "set-requested":
        parser.add_argument("--clear", action="store_true", help="request the port nowhere (no CHASSIS)")
    if action == "del" and group in ("ls", "lr"):
        parser.add_argument("-r", "--recursive", action="store_true", help="delete everything under it too")
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    if group == "import":
        parser.add_argument("--overwrite", action="store_true", help="replace objects that already exist")
        parser.add_argument("--resume", action="store_true",
                            help="complete an interrupted import of FILE (skips records already written)")
        parser.add_argument("--abandon", action="store_true",
                            help="drop the marker of an interrupted import (no FILE; what it wrote stays)")


def _resolve(group: str, action: str | None) -> tuple[str, str]:
    from .commands import COMMANDS

    if (group, "") in COMMANDS:
        return group, ""
    for (g, a), spec in COMMANDS.items():
        if g == group and action in (a, *spec[0]):
            return g, a
    actions = ", ".join(a for g, a in COMMANDS if g == group)
    raise UsageError(f"require a subcommand of {group}: {actions}")


def run(argv: list[str]) -> int:
    if argv in (["-v"], ["--version"]):  # scripts ask this in loops: answered before any parser is built
        from tuplenet import __version__

        return _out(f"tpctl {__version__}")
    lean = _command_of(argv) == "trace"
    opts = _quick_trace(argv) if lean else None  # argparse-free when the line is plain
    if opts is None:
        parser = build_parser(only_trace=lean)
        try:
            opts = parser.parse_args(argv)
        except UsageError:
            if not lean:
                raise
            parser = build_parser()  # the guess was wrong (an abbreviated option's value was "trace")
            opts = parser.parse_args(argv)
    if opts.version:
        from tuplenet import __version__

        return _out(f"tpctl {__version__}")
    if not opts.group:
        parser.print_help()
        return 1
    if opts.group == "trace":
        from .trace import run as trace

        return trace(opts, opts.json or opts.json_leaf)
    import os

    from tuplenet.store.security import from_args as etcd_security

    from .commands import COMMANDS
    from .context import Canceled, Ctx

    key = _resolve(opts.group, getattr(opts, "action", None))
    _aliases, lo, hi, usage, _argtext, handler = COMMANDS[key]
    args = opts.args
    if not lo <= len(args) <= hi:
        raise UsageError(usage)
    ctx = Ctx(opts.endpoints, opts.prefix, opts.timeout, opts.json or getattr(opts, "json_leaf", False),
              recursive=getattr(opts, "recursive", False), yes=getattr(opts, "yes", False),
              overwrite=getattr(opts, "overwrite", False), resume=getattr(opts, "resume", False),
              abandon=getattr(opts, "abandon", False), requested_chassis=getattr(opts, "requested_chassis", None),
              clear=getattr(opts, "clear", False))
    ctx.security = etcd_security(opts, os.environ)
    try:
        return handler(ctx, args)
    except Canceled as exc:
        raise UsageError(str(exc)) from None
    finally:
        ctx.close()


def _out(text: str) -> int:
    sys.stdout.write(text + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = run(argv)
    except UsageError as exc:
        return _fail(str(exc))
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return _fail("interrupted")
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line, never a traceback
        return _fail(_describe(exc))
    sys.stdout.flush()
    return code


def _describe(exc: Exception) -> str:
    name = type(exc).__module__
    text = " ".join(str(exc).split()) or type(exc).__name__
    if name.startswith("tuplenet.") or isinstance(exc, (ValueError, OSError)):
        return text
    return f"{type(exc).__name__}: {text}"


def _fail(message: str) -> int:
    sys.stdout.flush()
    sys.stderr.write(" ".join(message.split()) + "\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())

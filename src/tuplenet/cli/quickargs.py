"""The plain shape of one command line parsed without argparse, from the same option tables argparse gets.

Importing argparse and building tpctl's trace parser costs ~10 ms (gettext's catalogue search, shutil for
the terminal width); `tpctl trace --simulate` has a 50 ms budget. `parse` accepts only what argparse would
accept the same way - exact option names, `--long=value`, values that do not start with "-", every token
known - and returns None for anything else (help, abbreviations, errors, nargs options), which then goes to
argparse for its own answer and messages. tests/unit/test_quickargs.py checks it against argparse.

An option table entry is `(flags, add_argument keyword arguments)`, exactly what goes to add_argument.
"""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

Option = tuple[tuple[str, ...], dict]
_FLAG = object()


def _spec(flags: tuple[str, ...], kw: dict) -> tuple[str, Any, Any]:
    """(dest, converter or _FLAG or None if unsupported, default), as argparse derives them."""
    long = next((f for f in flags if f.startswith("--")), flags[0])
    dest = kw.get("dest") or long.lstrip("-").replace("-", "_")
    if kw.get("action") == "store_true":
        return dest, _FLAG, kw.get("default", False)
    if set(kw) - {"dest", "default", "type", "help", "metavar"}:
        return dest, None, kw.get("default")  # nargs, const, choices...: argparse's business
    default = kw.get("default")
    convert = kw.get("type", str)
    if isinstance(default, str) and convert is not str:
        return dest, None, default  # argparse converts string defaults: not worth repeating here
    return dest, convert, default


def parse(argv: Sequence[str], top: Sequence[Option], command: str, options: Sequence[Option],
          fixed: dict[str, Any]) -> SimpleNamespace | None:
    """Options of `top`, then `command`, then options of `options`; the namespace argparse would give (with
    `fixed`, e.g. the subparser's dest), or None when unsure."""
    tables = []
    values: dict[str, Any] = dict(fixed)
    for table in (top, options):
        index: dict[str, tuple[str, Any]] = {}
        for flags, kw in table:
            dest, convert, default = _spec(flags, kw)
            values[dest] = default
            for f in flags:
                index[f] = (dest, convert)
        tables.append(index)
    index, seen, i = tables[0], False, 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not seen and tok == command:
            index, seen = tables[1], True
            continue
        if not tok.startswith("-") or tok in ("-", "--") or " " in tok:
            return None
        name, eq, value = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        found = index.get(name)
        if found is None or found[1] is None:
            return None
        dest, convert = found
        if convert is _FLAG:
            if eq:
                return None
            values[dest] = True
            continue
        if not eq:
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        try:
            values[dest] = convert(value)
        except (TypeError, ValueError):
            return None
    return SimpleNamespace(**values) if seen else None

"""tpctl's whole-tree commands: export, import and graph (the control layer is imported on use)."""

from __future__ import annotations

import sys

from .context import Ctx, say


def export_cmd(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control import format_export

    records, rev = ctx.ctl.export_records()
    text = format_export(records, f"tuplenet export: prefix={ctx.prefix} revision={rev} records={len(records)}")
    if not a or a[0] == "-":
        sys.stdout.write(text)
        return 0
    with open(a[0], "w", encoding="utf-8") as fh:
        fh.write(text)
    return say(f"exported {len(records)} records to {a[0]}")


def graph_cmd(ctx: Ctx, a: list[str]) -> int:
    """Text drawing on stdout; with FILE, Graphviz source (FILE.dot) or a picture (.png/.svg, needs `dot`)."""
    from tuplenet.control.errors import InvalidArgument
    from tuplenet.model import decode_kv

    from . import graph

    records, _ = ctx.ctl.export_records()
    entities = [e for k, v in records if (e := decode_kv(k, v)) is not None]
    if not a:
        sys.stdout.write(graph.text(entities))
        return 0
    target = a[0]
    source = graph.dot(entities)
    if target.endswith((".png", ".svg")):
        import subprocess

        try:
            subprocess.run(["dot", f"-T{target[-3:]}", "-o", target], input=source, text=True, check=True,
                           capture_output=True, timeout=60)
        except FileNotFoundError:
            raise InvalidArgument("graphviz `dot` is not installed; write a .dot file instead") from None
        except subprocess.CalledProcessError as exc:
            raise InvalidArgument(f"dot failed: {exc.stderr.strip()}") from None
    else:
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(source)
    return say(f"topology drawn to {target}")


def import_cmd(ctx: Ctx, a: list[str]) -> int:
    from tuplenet.control import parse_export
    from tuplenet.control.errors import InvalidArgument

    if ctx.abandon:
        if a or ctx.resume:
            raise InvalidArgument("--abandon takes no FILE and no --resume")
        return say(f"import marker removed ({ctx.ctl.abandon_import().describe()}); what it wrote stays")
    if not a:
        raise InvalidArgument("require a file name (- for stdin)")
    if a[0] == "-":
        text = sys.stdin.read()
    else:
        with open(a[0], encoding="utf-8") as fh:
            text = fh.read()
    res = ctx.ctl.import_records(parse_export(text), overwrite=ctx.overwrite, resume=ctx.resume)
    present = f", {res.present} already present" if res.resumed else ""
    return say(f"imported {res.created + res.replaced} records ({res.created} created, {res.replaced} replaced, "
               f"{res.ids_assigned} ids assigned{present}) in {res.batches} transactions")


__all__ = ["export_cmd", "graph_cmd", "import_cmd"]

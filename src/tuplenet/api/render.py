"""The topology drawing as text, Graphviz source or SVG (tuplenet.cli.graph draws; `dot` renders SVG)."""

from __future__ import annotations

import subprocess
from typing import Any

from tuplenet.cli import graph
from tuplenet.control import ControlError, Controller
from tuplenet.model import decode_kv

FORMATS = {"dot": "text/vnd.graphviz; charset=utf-8", "svg": "image/svg+xml", "text": "text/plain; charset=utf-8"}
DOT_TIMEOUT = 60.0


class RenderError(ControlError):
    """Graphviz is missing or failed; the topology itself is fine."""


def entities(ctl: Controller) -> list[Any]:
    records, _ = ctl.export_records()
    return [e for k, v in records if (e := decode_kv(k, v)) is not None]


def draw(objs: list[Any], fmt: str) -> str:
    """Text or Graphviz source (pure), or SVG (runs `dot`: call it from a worker thread)."""
    if fmt == "text":
        return graph.text(objs)
    source = graph.dot(objs)
    if fmt == "dot":
        return source
    try:
        proc = subprocess.run(["dot", "-Tsvg"], input=source, text=True, capture_output=True, check=True,
                              timeout=DOT_TIMEOUT)
    except FileNotFoundError:
        raise RenderError("graphviz `dot` is not installed on the API host; ask for format=dot") from None
    except subprocess.CalledProcessError as exc:
        raise RenderError(f"dot failed: {exc.stderr.strip()}") from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"dot took longer than {DOT_TIMEOUT:.0f}s") from None
    return proc.stdout

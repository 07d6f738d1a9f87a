"""The `tpcni` executable: env + stdin in, result or CNI error JSON out (exit 0 / 1), never a traceback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .errors import INTERNAL, CniError
from .spec import SUPPORTED_VERSIONS, load_json, parse_conf, parse_env, version_of


def handle(environ: Mapping[str, str], data: bytes, run: Callable[..., Any] | None = None) -> tuple[int, Any]:
    """(exit status, JSON to print) for one invocation; the whole protocol without process concerns.
    `run(env, conf)` executes a parsed command (tuplenet.cni.plugin.run unless given)."""
    version = version_of(data)
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            return 0, {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
        conf = parse_conf(load_json(data), environ, env.command)
        if run is None:
            from .plugin import run
        return 0, run(env, conf)
    except CniError as exc:
        return 1, exc.to_json(version)
    except Exception as exc:  # a bug must still answer in the protocol
        return 1, CniError(INTERNAL, f"internal error: {type(exc).__name__}: {str(exc)[:300]}").to_json(version)


def main() -> int:
    try:
        data = sys.stdin.buffer.read()
    except OSError:
        data = b""
    status, out = handle(os.environ, data)
    if out is not None:
        sys.stdout.write(json.dumps(out) + "\n")
    if status and out is not None:
        sys.stderr.write(f"tpcni: {out.get('msg')}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The `tpcni` executable: env + stdin in, result or CNI error JSON out (exit 0 / 1), never a traceback.

`tpcni serve [--socket PATH]` runs the optional helper of tuplenet.cni.server; a plugin run whose config names
an existing server socket forwards to it before importing anything else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping  # not typing: the forwarding path must stay light


def handle(environ: Mapping[str, str], data: bytes, run: Callable[..., object] | None = None) -> tuple[int, object]:
    """(exit status, JSON to print) for one invocation; the whole protocol without process concerns.
    `run(env, conf)` executes a parsed command (tuplenet.cni.plugin.run unless given)."""
    from .errors import INTERNAL, CniError
    from .spec import SUPPORTED_VERSIONS, load_json, parse_conf, parse_env, version_of

    version = version_of(data)
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            return 0, {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
        conf = parse_conf(load_json(data), environ, env.command)
        if run is None:
            from .plugin import run
        return 0, run(env, conf)  # type: ignore[misc]
    except CniError as exc:
        return 1, exc.to_json(version)
    except Exception as exc:  # a bug must still answer in the protocol
        return 1, CniError(INTERNAL, f"internal error: {type(exc).__name__}: {str(exc)[:300]}").to_json(version)


def render(environ: Mapping[str, str], data: bytes) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one invocation."""
    status, out = handle(environ, data)
    from tuplenet.store.jsonlite import dumps  # json.dumps without the json package's re/enum imports

    stdout = dumps(out) + "\n" if out is not None else ""
    stderr = f"tpcni: {out.get('msg')}\n" if status and isinstance(out, dict) else ""
    return status, stdout, stderr


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        from .server import DEFAULT_SOCKET, serve

        args = sys.argv[2:]
        serve(args[1] if args[:1] == ["--socket"] and len(args) > 1 else DEFAULT_SOCKET)
        return 0
    try:
        data = sys.stdin.buffer.read()
    except OSError:
        data = b""
    answer = None
    if os.environ.get("CNI_COMMAND", "VERSION") != "VERSION":
        from .server import forward, socket_path

        path = socket_path(data)
        answer = forward(path, dict(os.environ), data) if path else None
    status, stdout, stderr = answer or render(os.environ, data)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the runtime went away: let the interpreter's exit report it as before
        return status
    # Nothing is left to run or release (sockets closed, threads joined): skip the interpreter's teardown of
    # every module and object, a few ms of each container's start and stop.
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())

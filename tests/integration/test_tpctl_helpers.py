"""Helpers for the tpctl integration tests (no tests here).

`run` executes tpctl's real entry point, in-process by default (same code path from argv to exit status,
minus ~0.2 s of interpreter start per call) or as a subprocess with `proc=True`; the subprocess tests in
test_tpctl_process.py cover the process boundary itself.
"""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass

from tuplenet.cli import tpctl


@dataclass
class Result:
    rc: int
    out: str
    err: str


def argv(etcd, prefix: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "tuplenet.cli.tpctl", "-e", etcd.endpoint, "-p", prefix, *args]


def run(etcd, prefix: str, *args: str, stdin: str | None = None, proc: bool = False) -> Result:
    if proc:
        p = subprocess.run(argv(etcd, prefix, *args), input=stdin or "", capture_output=True, text=True,
                           timeout=60)
        return Result(p.returncode, p.stdout, p.stderr)
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin or ""), out, err
    try:
        rc = tpctl.main(argv(etcd, prefix, *args)[3:])
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(rc, out.getvalue(), err.getvalue())


def ok(etcd, prefix: str, *args: str, stdin: str | None = None, proc: bool = False) -> str:
    r = run(etcd, prefix, *args, stdin=stdin, proc=proc)
    assert r.rc == 0 and r.err == "", f"tpctl {' '.join(args)} failed: rc={r.rc} err={r.err!r} out={r.out!r}"
    return r.out


def fails(etcd, prefix: str, *args: str, match: str, stdin: str | None = None, proc: bool = False) -> str:
    """Expect exit 1 with exactly one stderr line containing `match`."""
    r = run(etcd, prefix, *args, stdin=stdin, proc=proc)
    assert r.rc == 1, f"tpctl {' '.join(args)} should fail: rc={r.rc} out={r.out!r} err={r.err!r}"
    lines = r.err.splitlines()
    assert len(lines) == 1 and match in lines[0], f"stderr {r.err!r} lacks {match!r}"
    assert "Traceback" not in r.err
    return lines[0]

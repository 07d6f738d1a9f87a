"""`make demo` keeps working: run it as the Makefile does, in its own workdir and name prefix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import e2e_skip_reason

pytestmark = pytest.mark.e2e


def test_demo_runs_end_to_end_and_cleans_up(tmp_path) -> None:
    if reason := e2e_skip_reason():
        pytest.skip(reason)
    r = subprocess.run([sys.executable, "-m", "tuplenet.sandbox.demo", "--workdir", str(tmp_path / "sb"),
                        "--out", str(tmp_path / "out"), "--name-prefix", "tnx"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.count(" 0% packet loss") == 3
    assert "Mbits/sec" in out or "Mbit/s" in out
    assert "through the edge: 'hello from outside'; the outside saw client 172.16.0.100 (SNAT)" in out
    assert "demo finished" in out and "sandbox removed" in out
    assert os.path.exists(tmp_path / "out" / "topology.png")
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "tnx-" not in left

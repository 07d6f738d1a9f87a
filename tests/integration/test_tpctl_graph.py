"""`tpctl graph`: the topology drawn from etcd, as text and as Graphviz."""

from __future__ import annotations

import subprocess
import sys


def tpctl(etcd, prefix: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", etcd.endpoint, "-p", prefix, *args],
                          capture_output=True, text=True, timeout=60)


def test_graph_text_dot_and_png(etcd, prefix, tmp_path) -> None:
    for args in [("ls", "add", "LS-A"), ("lr", "add", "R1"), ("lr", "link", "R1", "LS-A", "10.0.1.1/24"),
                 ("lsp", "add", "LS-A", "vm1", "10.0.1.2")]:
        assert tpctl(etcd, prefix, *args).returncode == 0
    r = tpctl(etcd, prefix, "graph")
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["R1  (distributed)", "  +-- R1_to_LS-A 10.0.1.1/24 --- LS-A",
                                     "        vm1          10.0.1.2        unbound"]
    r = tpctl(etcd, prefix, "graph", str(tmp_path / "t.dot"))
    assert r.returncode == 0 and r.stdout.strip() == f"topology drawn to {tmp_path / 't.dot'}"
    assert '"LR/R1" -> "LS/LS-A" [label="10.0.1.1/24", dir=both];' in (tmp_path / "t.dot").read_text()
    r = tpctl(etcd, prefix, "graph", str(tmp_path / "t.png"))
    assert r.returncode == 0
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = tpctl(etcd, prefix, "graph", "a", "b")
    assert r.returncode == 1 and "require at most one file name" in r.stderr

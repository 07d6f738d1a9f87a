"""`tpctl import` killed half way against a real etcd: the marker and a partial tree stay, agents would hold,
and `tpctl import --resume FILE` completes it to exactly what an uninterrupted import writes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from test_tpctl_helpers import argv, fails, ok

from tuplenet.model import IMPORT_MARKER_KEY
from tuplenet.model.importmark import ImportMarker
from tuplenet.store import Store


@pytest.fixture
def store(etcd, prefix):
    s = Store(etcd.endpoint, prefix=prefix)
    yield s
    s.delete_prefix("")
    s.close()


def _file(tmp_path, switches: int = 20, ports: int = 300):
    lines = []
    for s in range(switches):
        lines.append(f"entity_view/LS/ls{s}\tid={s + 1}")
        lines += [f"entity_view/LS/ls{s}/lsp/p{p}\tip=10.{s}.{p // 250}.{p % 250 + 2},mac=f2:01:00:00:00:01"
                  for p in range(ports)]
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def _records(store: Store) -> list[str]:
    return sorted(f"{kv.key}\t{kv.value}" for kv in store.get_prefix("entity_view/")[0]
                  if kv.key != IMPORT_MARKER_KEY)


def test_killed_import_is_resumed(etcd, prefix, store, tmp_path):
    path, lines = _file(tmp_path)
    proc = subprocess.Popen(argv(etcd, prefix, "import", str(path)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if store.get(IMPORT_MARKER_KEY) is not None and len(store.get_prefix("entity_view/LS/ls1/")[0]) > 0:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"import finished before it could be killed: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    marker_kv = store.get(IMPORT_MARKER_KEY)
    assert marker_kv is not None
    marker = ImportMarker.parse(marker_kv.value)
    assert marker.records == len(lines) and marker.pid == proc.pid and marker.batches > 20
    partial = _records(store)
    assert 0 < len(partial) < len(lines)

    fails(etcd, prefix, "import", "-", stdin="entity_view/LS/x\tid=999\n", match="another import is in progress")
    out = ok(etcd, prefix, "import", "--resume", str(path), proc=True)
    assert out.startswith(f"imported {len(lines) - len(partial)} records") and \
        f"{len(partial)} already present" in out, out
    assert store.get(IMPORT_MARKER_KEY) is None
    assert _records(store) == sorted(lines)
    assert ok(etcd, prefix, "toolbox", "find-ip-conflict") == "looks good!\n"
    assert ok(etcd, prefix, "toolbox", "find-id-conflict") == "looks good!\n"
    assert "already present" in ok(etcd, prefix, "import", "--resume", str(path))  # idempotent


def test_import_into_unreachable_etcd_fails_in_one_line(etcd, prefix, tmp_path):
    path, _ = _file(tmp_path, 1, 5)
    p = subprocess.run([*argv(etcd, prefix, "import", str(path))[:3], "-e", "127.0.0.1:1", "-t", "0.5",
                        "import", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr

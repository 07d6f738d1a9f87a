"""tpctl across the process boundary: entry point, exit codes, stdin prompt, races between processes,
export -> import round trip and import atomicity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_tpctl_helpers import argv, fails, ok, run

from tuplenet.control import Controller
from tuplenet.store import Store


@pytest.fixture
def store(etcd, prefix):
    s = Store(etcd.endpoint, prefix=prefix)
    yield s
    s.delete_prefix("")
    s.close()


@pytest.fixture
def other_prefix(etcd, prefix):
    """A second fresh prefix (import target)."""
    p = prefix.rstrip("/") + "-copy/"
    yield p
    with Store(etcd.endpoint, prefix=p) as s:
        s.delete_prefix("")


def test_entry_point_and_exit_codes(etcd, prefix, store):
    assert ok(etcd, prefix, "ls", "add", "ls1", proc=True) == "switch ls1 created\n"
    assert json.loads(ok(etcd, prefix, "ls", "show", "-j", proc=True)) == [{"name": "ls1", "id": 1}]
    fails(etcd, prefix, "ls", "add", "ls1", match="already exists", proc=True)
    fails(etcd, prefix, "lsp", "add", "ls1", "p", "1.2.3", match="invalid IP", proc=True)
    prompt = "all data under this device will be deleted\nconfirm? [yes/no] "
    r = run(etcd, prefix, "ls", "del", "-r", "ls1", stdin="no\n", proc=True)
    assert (r.rc, r.out, r.err) == (1, prompt, "operation canceled\n")
    assert ok(etcd, prefix, "ls", "del", "-r", "ls1", stdin="yes\n", proc=True) == prompt + "ls1 deleted\n"


def test_unreachable_etcd_is_one_line(etcd, prefix):
    proc = subprocess.run([sys.executable, "-m", "tuplenet.cli.tpctl", "-e", "127.0.0.1:1", "-t", "0.5",
                           "ls", "show"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "etcd unavailable" in proc.stderr


def _race(etcd, prefix: str, *cmds: list[str]) -> list[tuple[int, str]]:
    procs = [subprocess.Popen(argv(etcd, prefix, *c), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    out = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        out.append((p.returncode, err))
    return out


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_lsp_add_same_ip_exactly_one_wins(etcd, prefix, store, round_):
    Controller(store).add_switch("ls1")
    results = _race(etcd, prefix, ["lsp", "add", "ls1", "a", "10.0.0.2"], ["lsp", "add", "ls1", "b", "10.0.0.2"])
    assert sorted(rc for rc, _ in results) == [0, 1], results
    loser = next(err for rc, err in results if rc == 1)
    assert "lower 16 bits of 10.0.0.2 conflict with other IP" in loser
    ports = Controller(store).list_switch_ports("ls1")
    assert len(ports) == 1 and ports[0].ip == "10.0.0.2"


def test_concurrent_adds_of_different_ips_all_succeed(etcd, prefix, store):
    Controller(store).add_switch("ls1")
    results = _race(etcd, prefix, *[["lsp", "add", "ls1", f"p{i}", f"10.0.0.{i + 2}"] for i in range(4)])
    assert [rc for rc, _ in results] == [0, 0, 0, 0], results
    assert len(Controller(store).list_switch_ports("ls1")) == 4


def test_export_import_roundtrip(etcd, prefix, other_prefix, store, tmp_path):
    ctl = Controller(store)
    for s in range(3):
        ctl.add_switch(f"ls{s}")
        for p in range(40):
            ctl.add_switch_port(f"ls{s}", f"p{p}", f"10.0.{s}.{p + 10}", chassis="hv1")
    ctl.add_router("lr0", "edge1")
    for s in range(3):
        ctl.link("lr0", f"ls{s}", f"10.0.{s}.1/24")
    ctl.add_static_route("lr0", "default", "0.0.0.0/0", "10.0.0.254", "lr0_to_ls0")
    ctl.add_nat("lr0", "snat", "10.0.0.0/8", "snat", "172.16.0.1")
    store.put("entity_view/chassis/hv1", "ip=192.168.0.1,tick=42")
    store.put("entity_view/LS/ls0/lsp/p0", "ip=10.0.0.10,mac=f2:01:0a:00:00:0a,chassis=hv1,future=kept")
    dump = tmp_path / "topo.txt"
    out = ok(etcd, prefix, "export", str(dump), proc=True)
    assert out.startswith("exported ")
    text = dump.read_text()
    assert "entity_view/LS/ls0/lsp/p0\tip=10.0.0.10,mac=f2:01:0a:00:00:0a,chassis=hv1,future=kept\n" in text
    assert _records(etcd, prefix) == [line for line in text.splitlines() if not line.startswith("#")]
    out = ok(etcd, other_prefix, "import", str(dump), proc=True)
    assert out.startswith("imported ") and "0 ids assigned" in out
    assert _records(etcd, other_prefix) == _records(etcd, prefix)
    with Store(etcd.endpoint, prefix=other_prefix) as dst:
        assert dst.get("ip_book/LS/ls0").value == store.get("ip_book/LS/ls0").value
        assert dst.get("globals/device_ids").value == store.get("globals/device_ids").value
    # Importing again refuses (objects exist) unless told to overwrite.
    fails(etcd, other_prefix, "import", str(dump), match="already exists (use --overwrite")
    assert "replaced" in ok(etcd, other_prefix, "import", "--overwrite", str(dump))
    assert ok(etcd, other_prefix, "toolbox", "find-id-conflict") == "looks good!\n"


def _records(etcd, prefix: str) -> list[str]:
    out = ok(etcd, prefix, "export")
    return [line for line in out.splitlines() if not line.startswith("#")]


def test_import_is_atomic_on_a_bad_record(etcd, prefix, other_prefix, store, tmp_path):
    lines = [f"entity_view/LS/ls{i}\tid={i + 1}" for i in range(10)]
    lines += [f"entity_view/LS/ls{i}/lsp/p{j}\tip=10.{i}.{j}.2,mac=f2:01:00:00:00:01" for i in range(10)
              for j in range(30)]
    lines.insert(200, "entity_view/LS/ls3/lsp/bad\tip=10.3.99.300,mac=f2:01:00:00:00:01")
    f = tmp_path / "bad.txt"
    f.write_text("\n".join(lines) + "\n")
    err = fails(etcd, prefix, "import", str(f), match="nothing written", proc=True)
    assert "entity_view/LS/ls3/lsp/bad" in err and "invalid IP" in err
    assert store.get_prefix("entity_view/")[0] == []
    f.write_text("\n".join(line for line in lines if "/bad\t" not in line) + "\n")
    assert "imported 310 records" in ok(etcd, prefix, "import", str(f))
    assert len(store.get_prefix("entity_view/")[0]) == 310

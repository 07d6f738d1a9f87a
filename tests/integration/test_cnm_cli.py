"""tpcnm refuses to start with one clear line and exit 1 when its configuration or its host is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest


def tpcnm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuplenet.cnm.main", *args], capture_output=True, text=True,
                          timeout=30, env=env)


@pytest.mark.parametrize("args,message", [
    (["--mtu", "5"], "tpcnm: bad mtu 5: expected 576..9000"),
    (["--ready-timeout", "-1"], "tpcnm: --ready-timeout must be >= 0"),
    (["--cert", "/nonexistent.crt"], "tpcnm: --cert and --key must be given together (client certificate and its key)"),
    (["--cacert", "/nonexistent-ca.crt"], "tpcnm: cannot load CA certificate --cacert /nonexistent-ca.crt: "
                                          "No such file or directory"),
])
def test_bad_options(args: list[str], message: str, tmp_path) -> None:
    r = tpcnm(*args, "--socket", str(tmp_path / "p.sock"))
    assert (r.returncode, r.stderr.strip(), r.stdout) == (1, message, "")
    assert not (tmp_path / "p.sock").exists()


def test_no_ovsdb(tmp_path, etcd) -> None:
    r = tpcnm("-e", etcd.endpoint, "--ovsdb", str(tmp_path / "none.sock"), "--socket", str(tmp_path / "p.sock"))
    assert r.returncode == 1 and r.stderr.startswith("tpcnm: reading OVS: ovs-vsctl: unix:") and \
        "database connection failed" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "p.sock").exists()

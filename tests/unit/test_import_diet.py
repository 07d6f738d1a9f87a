"""Start-up budgets of the short-lived commands (tpctl, tpctl trace, tpcni): each path runs in a fresh
interpreter and must not import what it does not need. http.client (with the email package), ssl, grpc and
asyncio cost tens of ms per start; the agent's daemon side has no business in a CLI. A regression here shows
up as a new name in the failure message. The usual fixes: annotation-only names under `TYPE_CHECKING = False` /
`if TYPE_CHECKING: from typing import Any`; tuplenet.records for dataclass/NamedTuple; tuplenet.lazylog for
a module logger; an import inside the function that needs a rarely used module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from canned_server import CannedServer, json_message

HEAVY = ["http.client", "email", "ssl", "grpc", "asyncio", "urllib", "_hashlib"]  # _hashlib: OpenSSL
DAEMON = ["tuplenet.agent.daemon", "tuplenet.agent.ofctrl", "tuplenet.agent.openflow.conn", "tuplenet.agent.ovsdb",
          "tuplenet.agent.metrics", "prometheus_client", "ovs"]
# Services and record kinds the common paths never meet: loaded on first use (control.Controller, model.codec).
BEYOND_0_3 = ["tuplenet.model.acl", "tuplenet.model.lb", "tuplenet.model.mirror", "tuplenet.control.backup",
              "tuplenet.control.edges", "tuplenet.control.mirrors", "tuplenet.control.maint"]
# What tuplenet.records, lazylog, quickargs, store/http1 and TYPE_CHECKING-only typing spare every short-lived
# command (~40 ms together).
STDLIB_HEAVY = ["dataclasses", "inspect", "logging", "encodings.idna", "queue", "typing"]
UNREACHABLE = ["-e", "127.0.0.1:1", "-t", "0.2"]  # the command imports what it needs, then fails to connect

# Runs tpctl's main() in-process with stdout/stderr captured, then imports `extra`; prints exit code,
# stderr and every loaded module name as JSON.
_PROBE = """
import contextlib, io, json, sys
from tuplenet.cli.tpctl import main
err = io.StringIO()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
    code = main(json.loads(sys.argv[1]))
for name in json.loads(sys.argv[2]):
    __import__(name)
print(json.dumps([code, err.getvalue(), sorted(sys.modules)]))
"""


def loaded(argv: list[str], extra: list[str] = ()) -> tuple[int, str, set[str]]:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(list(extra))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    code, err, modules = json.loads(out.stdout)
    return code, err, set(modules)


def present(modules: set[str], names: list[str]) -> list[str]:
    """Which of `names` (packages count with their submodules) were imported."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_tpctl_version_loads_no_etcd_client_at_all() -> None:
    code, _, modules = loaded(["--version"])
    assert code == 0
    assert present(modules, [*HEAVY, *DAEMON, "tuplenet.agent", "tuplenet.store.transport", "tuplenet.store.store",
                             "tuplenet.control", "tuplenet.model", "logging", "socket", "argparse"]) == []


def test_tpctl_show_loads_the_control_layer_but_no_http_client_tls_or_agent() -> None:
    code, err, modules = loaded([*UNREACHABLE, "ls", "show"])
    assert code == 1 and "etcd unavailable" in err  # it got as far as the etcd request
    assert "tuplenet.control" in modules and "tuplenet.store.http1" in modules
    assert present(modules, [*HEAVY, *DAEMON, "tuplenet.agent", "tuplenet.store.watch", "tuplenet.store.lease",
                             "logging", *BEYOND_0_3, *STDLIB_HEAVY]) == []


def test_tpctl_trace_loads_the_pipeline_but_no_daemon_or_0_3_commands() -> None:
    code, err, modules = loaded(
        [*UNREACHABLE, "trace", "--simulate", "-s", "LS-A/vm1", "--dst-ip", "10.10.2.2"],
        ["tuplenet.trace.fabric", "tuplenet.trace.report", "tuplenet.trace.request"])
    assert code == 1 and "etcd unavailable" in err
    assert "tuplenet.agent.engine" in modules
    assert present(modules, [*HEAVY, *DAEMON, "tuplenet.cli.commands", "tuplenet.control",
                             "tuplenet.store.watch", *STDLIB_HEAVY, "argparse", "tuplenet.trace.livedetect",
                             "tuplenet.agent.pipeline.acl", "tuplenet.agent.pipeline.lb",
                             "tuplenet.agent.pipeline.lbhealth", "tuplenet.agent.ovsdb_ipfix"]) == []


def test_tpctl_trace_through_the_api_loads_a_thin_client_only() -> None:
    # --api: the server walks its warm model; the process is the client start (the 50 ms budget's path)
    code, err, modules = loaded([*UNREACHABLE, "trace", "--simulate", "-s", "LS-A/vm1", "--dst-ip", "10.10.2.2",
                                 "--api", "http://127.0.0.1:1"])
    assert code == 1 and "tuplenet-api at http://127.0.0.1:1" in err  # it got as far as the request
    assert "tuplenet.store.http1" in modules
    assert present(modules, [*HEAVY, *DAEMON, *STDLIB_HEAVY, "tuplenet.agent", "tuplenet.trace", "tuplenet.model",
                             "tuplenet.control", "tuplenet.store.store", "argparse"]) == []


# `tpctl trace --simulate --api` with a text answer: the probe itself imports only sys and io (both loaded by
# every interpreter), so json, socket's enums and selectors show up only if the thin path loads them.
_BARE_PROBE = """
import io, sys
from tuplenet.cli.tpctl import main
out, err = io.StringIO(), io.StringIO()
sys.stdout, sys.stderr = out, err
code = main(sys.argv[1:])
sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
print(code, " ".join(sorted(sys.modules)))
print(err.getvalue().strip())
print(out.getvalue(), end="")
"""


@pytest.fixture
def canned_api() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback 'tuplenet-api' answering every request with one text trace; records the request heads."""
    body = b"hv1: LS-A/vm1 -> LR-A\ndelivered\n"
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n\r\n%s"
              % (len(body), body))
    srv = CannedServer(lambda _head: answer, per_connection=1)
    yield srv.url, srv.requests
    srv.close()


def test_tpctl_trace_through_the_api_prints_text_without_json_or_the_socket_module(canned_api) -> None:
    url, heads = canned_api
    argv = ["trace", "--simulate", "-s", "LS-A/vm1", "--dst-ip", "10.10.2.2", "--api", url]
    out = subprocess.run([sys.executable, "-c", _BARE_PROBE, *argv], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "TUPLENET_API_TOKEN"})
    assert out.returncode == 0, out.stderr
    status, err, printed = out.stdout.split("\n", 2)
    code, _, names = status.partition(" ")
    assert (code, err, printed) == ("0", "", "hv1: LS-A/vm1 -> LR-A\ndelivered\n")
    assert heads and heads[0].startswith(b"GET /api/v2/trace?src_port=LS-A%2Fvm1&dst_ip=10.10.2.2&")
    assert b"Accept: text/plain" in heads[0].split(b"\r\n")
    modules = set(names.split())
    assert "_socket" in modules and "tuplenet.store.http1" in modules
    assert present(modules, [*HEAVY, *STDLIB_HEAVY, "json", "socket", "selectors", "enum", "argparse",
                             "tuplenet.store.transport", "tuplenet.store.store", "tuplenet.trace",
                             "tuplenet.store.security", "tuplenet.records"]) == []  # its table only


def test_tpctl_live_trace_loads_neither_the_pipeline_nor_the_daemon() -> None:
    # tpctl start to printed path is the live trace's budget (1 s across 3 hosts): the hosts walk the flows
    code, err, modules = loaded([*UNREACHABLE, "trace", "-s", "LS-A/vm1", "--dst-ip", "10.10.2.2"],
                                ["tuplenet.trace.live", "tuplenet.trace.report", "tuplenet.trace.request"])
    assert code == 1 and "etcd unavailable" in err
    assert present(modules, [*HEAVY, *DAEMON, "tuplenet.agent.engine", "tuplenet.agent.etcdsync",
                             "tuplenet.agent.pipeline", "tuplenet.trace.fabric", "tuplenet.trace.interp",
                             "tuplenet.cli.commands", "tuplenet.control", "tuplenet.store.watch", *STDLIB_HEAVY,
                             "argparse"]) == []


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_tpcni_loads_no_argparse_http_client_tls_or_agent(command: str) -> None:
    # What an ADD/DEL imports before its first etcd request: the entry point, the plugin, the control layer
    # and the store (plugin.controller()); running it for real needs root and a network namespace.
    probe = ("import sys, tuplenet.cni.main, tuplenet.cni.plugin as p\n"
             "from tuplenet.cni.spec import parse_env\n"
             f"parse_env({{'CNI_COMMAND': '{command}', 'CNI_CONTAINERID': 'c1', 'CNI_IFNAME': 'eth0',"
             " 'CNI_NETNS': '/proc/1/ns/net', 'CNI_PATH': '/bin'})\n"
             "import tuplenet.control\n"
             "from tuplenet.store import Store, StoreError, Unavailable\n"
             "from tuplenet.store.security import from_args\n"
             "print(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    modules = set(out.stdout.split())
    assert "tuplenet.store.store" in modules and "tuplenet.control" in modules
    assert present(modules, [*HEAVY, *DAEMON, "tuplenet.agent", "argparse", "tuplenet.store.watch",
                             "tuplenet.store.lease", "logging", "random", *BEYOND_0_3, *STDLIB_HEAVY,
                             "socket", "selectors", "importlib", *LITE_JSON]) == []


# tpcni DEL run for real up to its etcd request (OVSDB answered by a stub, etcd unreachable): the veth goes by
# one rtnetlink request, OVSDB and etcd over `_socket`, so neither subprocess (~5 ms) nor the socket module
# (~2.5 ms) nor importlib is loaded; JSON through store.jsonlite, base64 through binascii, names checked without
# `re` (LITE_JSON, ~6 ms). As root it runs in a new network namespace: the request meets no link.
LITE_JSON = ["json", "re", "enum", "base64"]
_CNI_DEL_PROBE = """
import sys
from tuplenet.store.jsonlite import dumps, loads
from tuplenet.cni.main import handle
status, out = handle(loads(sys.argv[1]), sys.argv[2].encode())
print(dumps([status, out, sorted(sys.modules)]))
"""


@pytest.fixture
def stub_ovsdb(tmp_path) -> Iterator[str]:
    """A unix-socket OVSDB answering the plugin's transactions: chassis hv-stub, bridge br-int, no ports."""
    path = str(tmp_path / "db.sock")

    def answer(op: dict) -> dict:
        if op.get("op") != "select":
            return {"count": 0}
        return {"rows": {"Open_vSwitch": [{"external_ids": ["map", [["system-id", "hv-stub"]]]}],
                         "Bridge": [{"name": "br-int"}]}.get(op.get("table"), [])}

    def respond(msg: dict) -> bytes:
        result = [answer(op) for op in msg["params"][1:]]
        return json.dumps({"id": msg["id"], "result": result, "error": None}).encode()

    srv = CannedServer(respond, json_message, unix_path=path)
    yield path
    srv.close()


def test_tpcni_del_spawns_nothing_and_loads_neither_subprocess_nor_socket(stub_ovsdb: str) -> None:
    import shutil

    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "importdiet1", "CNI_IFNAME": "eth0", "CNI_NETNS": "",
           "CNI_PATH": "/bin"}
    conf = {"cniVersion": "1.0.0", "name": "tn", "type": "tpcni", "switch": "LS-A", "ovsdbSocket": stub_ovsdb,
            "etcdEndpoints": "127.0.0.1:1", "etcdTimeout": 0.2}
    wrap = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
    out = subprocess.run([*wrap, sys.executable, "-c", _CNI_DEL_PROBE, json.dumps(env), json.dumps(conf)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status, answer, names = json.loads(out.stdout)
    assert status == 1 and answer["code"] == 11 and "etcd unavailable" in answer["msg"], answer
    modules = set(names)
    assert "tuplenet.control" in modules and "tuplenet.cni.netlink" in modules  # it got as far as etcd
    assert present(modules, ["subprocess", "socket", "selectors", "signal", "importlib", *LITE_JSON, *HEAVY, *DAEMON,
                             "tuplenet.agent", "argparse", "tuplenet.store.watch", "tuplenet.store.lease",
                             "random", *BEYOND_0_3, *STDLIB_HEAVY]) == []


def test_lazy_acl_kinds_match_the_acl_model() -> None:
    from tuplenet.model import acl, codec

    assert set(codec._ACL_KINDS) == {*acl.ACL_KINDS, *acl.SET_KINDS}

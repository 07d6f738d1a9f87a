"""End-to-end fixtures: a namespace sandbox of real hosts (userspace OVS, Geneve, real etcd).

The sandbox is module-scoped because building it costs about a second per test module, and `down()` always
runs, so a failing test leaves no namespace, process or file behind.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest

from tuplenet.sandbox.netns import NetnsSandbox

NEEDED = ("ip", "ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "etcd", "ethtool")

# Stands in for the agent so sandbox tests do not depend on it: records how it was started and whether etcd
# answers from inside its host namespace, registers a chassis record like the agent, then waits to be stopped.
FAKE_AGENT = [sys.executable, "-c", """
import base64, json, os, signal, sys, urllib.request
if os.environ.get('FAKE_EXIT'):
    sys.exit(3)
ep = sys.argv[sys.argv.index('-a') + 1]
prefix, tip = sys.argv[sys.argv.index('-p') + 1], sys.argv[sys.argv.index('-f') + 1]
try:
    health = json.load(urllib.request.urlopen(f'http://{ep}/health', timeout=5)).get('health')
    host = os.path.basename(os.path.dirname(os.environ['TUPLENET_RUNDIR']))
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    put = {'key': b64(f'{prefix}entity_view/chassis/{host}'), 'value': b64(f'ip={tip},tick=1')}
    urllib.request.urlopen(urllib.request.Request(f'http://{ep}/v3/kv/put', data=json.dumps(put).encode()))
except OSError as exc:
    health = repr(exc)
keys = ('TUPLENET_RUNDIR', 'TUPLENET_OVSDB_PATH', 'OVS_RUNDIR', 'ONDEMAND', 'GATEWAY')
info = {'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in keys}, 'pid': os.getpid(),
        'netns': os.readlink('/proc/self/ns/net'), 'etcd_health': health}
path = os.path.join(os.environ['TUPLENET_RUNDIR'], 'fake-agent.json')
with open(path + '.tmp', 'w') as f:
    json.dump(info, f)
os.replace(path + '.tmp', path)
signal.pause()
"""]


def e2e_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    missing = [b for b in NEEDED if shutil.which(b) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


@pytest.fixture
def e2e_env() -> None:
    """Skip a test that builds its own sandbox when this machine cannot."""
    if reason := e2e_skip_reason():
        pytest.skip(reason)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[NetnsSandbox]:
    """Two hosts, no agents (tests drive OVS by hand or start the fake agent), own etcd."""
    reason = e2e_skip_reason()
    if reason:
        pytest.skip(reason)
    sb = NetnsSandbox(workdir=f"/tmp/tn-e2e-{os.getpid()}", name_prefix="tne", agent_cmd=FAKE_AGENT)
    try:
        sb.up(hosts=2, agents=False)
        yield sb
    finally:
        sb.down()

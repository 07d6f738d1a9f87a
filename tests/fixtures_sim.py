"""Pytest fixtures for simulated hosts on the OVS dummy datapath (register from conftest.py).

Every test gets its own network under tmp_path, so daemons, sockets and pcaps never collide and stay on
disk for post-mortem; everything is stopped by pid after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tuplenet.sandbox.sim import SimNetwork

SIM3_HOSTS = {"hv1": "192.168.100.2", "hv2": "192.168.100.3", "hv3": "192.168.100.4"}


@pytest.fixture
def sim_net(tmp_path: Path) -> Iterator[SimNetwork]:
    """An empty SimNetwork (main sim with the physical bridge), destroyed after the test."""
    net = SimNetwork(str(tmp_path / "sim"))
    try:
        yield net
    finally:
        net.destroy()


@pytest.fixture
def sim3(sim_net: SimNetwork) -> SimNetwork:
    """Hosts hv1..hv3 at 192.168.100.2..4 with tunnel neighbours seeded; no br-int or agent yet."""
    for name, ip in SIM3_HOSTS.items():
        sim_net.add_host(name, ip)
    sim_net.install_arp()
    return sim_net

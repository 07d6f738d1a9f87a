"""BFD settings end to end in the pure parts: the agent's interval (TUPLENET_BFD_INTERVAL_MS) reaches the
tunnels' `bfd` column as min_tx/min_rx; a tunnel no longer wanted gets enable=false; bad values refuse to
start with one line."""

from __future__ import annotations

import pytest
from test_ovsdb_model import FLOWBASED, tun, view

from tuplenet.agent.config import ConfigError, load
from tuplenet.agent.ovsdb_model import D_BFD, Desired
from tuplenet.agent.ovsdb_plan import FixIface, plan


def test_timers_reach_the_bfd_column() -> None:
    v = view(FLOWBASED, tun("10.0.0.2", "hv2"))
    p = plan(v, Desired(tunnels={"hv2": "10.0.0.2"}, bfd={"hv2": True}, bfd_timers={"hv2": (250, 300)}))
    assert p.actions == [FixIface("tupleNet-167772162", D_BFD,
                                  bfd={"enable": "true", "min_tx": "250", "min_rx": "300"})]
    off = plan(v, Desired(tunnels={"hv2": "10.0.0.2"}, bfd={"hv2": False}, bfd_timers={"hv2": (250, 300)}))
    assert off.actions == [FixIface("tupleNet-167772162", D_BFD, bfd={"enable": "false"})]


@pytest.mark.parametrize(("value", "ok"), [("250", 250), ("1000", 1000), ("0", None), ("-5", None), ("x", None),
                                           ("", None)])
def test_interval_setting(value: str, ok: int | None) -> None:
    env = {"TUPLENET_BFD_INTERVAL_MS": value}
    if ok is None:
        with pytest.raises(ConfigError, match="TUPLENET_BFD_INTERVAL_MS must be a positive integer"):
            load(["-f", "192.0.2.1"], env)
    else:
        assert load(["-f", "192.0.2.1"], env).bfd_interval_ms == ok
    assert load(["-f", "192.0.2.1"], {}).bfd_interval_ms == 250

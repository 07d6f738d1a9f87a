"""The main loop's exception barrier: a failing step is counted and logged once per kind; the loop goes on."""

from __future__ import annotations

import logging

import pytest

from tuplenet.agent.barrier import Barrier


def test_failing_step_is_counted_and_logged_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    b = Barrier()
    done: list[int] = []
    with caplog.at_level(logging.DEBUG, logger="tuplenet"):
        assert b.run("apply etcd change", done.append, 1)
        for _ in range(5):
            assert not b.run("apply etcd change", lambda: {}["missing"])
        assert not b.run("ovs update", lambda: 1 / 0)
    assert done == [1]
    assert b.status() == {"total": 6, "apply etcd change": 5, "ovs update": 1}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)


def test_base_exceptions_are_not_swallowed() -> None:
    """Ctrl-C and SystemExit still stop the agent."""
    with pytest.raises(KeyboardInterrupt):
        Barrier().run("step", lambda: (_ for _ in ()).throw(KeyboardInterrupt))


def test_agent_loop_survives_a_bad_event_and_applies_the_next() -> None:
    """An OVS update the agent cannot digest (here: not even a state object) must not stop the batch: the
    etcd change after it still lands in the view and the failure is counted."""
    from tuplenet.agent.config import load
    from tuplenet.agent.daemon import Agent
    from tuplenet.model import LS

    agent = Agent(load(["-f", "192.168.100.2"], {}))
    ls = LS("LS-A", 1)
    agent._handle([("ovs", object()), ("etcd", [(("LS", "LS-A"), ls, None)], 5)])
    assert agent.view.get(("LS", "LS-A")) == ls
    assert agent.barrier.status()["apply OVS state"] == 1

"""StatusPacer: status.json is rewritten once events quieten, never in the middle of a burst, yet at least
every STATUS_MAX_AGE during a steady stream and every STATUS_IDLE with no events."""

from tuplenet.agent.status import STATUS_IDLE, STATUS_MAX_AGE, STATUS_QUIET, StatusPacer


def test_first_turn_writes_at_once_then_waits_for_quiet() -> None:
    p = StatusPacer()
    assert p.due(100.0, False)  # start-up: nothing written yet
    assert not p.due(100.001, True)  # a batch: not inside its latency window
    assert abs(p.wait(100.001) - STATUS_QUIET) < 1e-9
    assert not p.due(100.001 + STATUS_QUIET / 2, False)
    assert p.due(100.001 + STATUS_QUIET, False)  # quiet long enough
    assert not p.due(100.001 + STATUS_QUIET + 0.001, False)  # written: clean again


def test_steady_stream_still_writes_within_max_age() -> None:
    p = StatusPacer()
    p.due(0.0, False)
    t, writes = 10.0, []
    while t < 10.0 + 3 * STATUS_MAX_AGE:  # an event every half quiet period: never quiet
        if p.due(t, True):
            writes.append(t)
        t += STATUS_QUIET / 2
    assert writes, "a stream of events must not starve the status"
    gaps = [b - a for a, b in zip([10.0, *writes], writes, strict=False)]
    assert max(gaps) <= STATUS_MAX_AGE + STATUS_QUIET


def test_idle_rewrites_every_idle_period() -> None:
    p = StatusPacer()
    assert p.due(5.0, False)
    assert 0 < p.wait(5.0) <= 1.0  # the loop still wakes at least once a second
    assert not p.due(5.0 + STATUS_IDLE / 2, False)
    assert p.due(5.0 + STATUS_IDLE, False)

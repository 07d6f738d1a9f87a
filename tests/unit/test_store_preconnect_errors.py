"""Review finding (fixed): Transport.preconnect catches only _Retry/StoreError, but connecting can raise
other errors (an endpoint host the idna codec refuses raises UnicodeError), which then end the preconnect
thread with a traceback on stderr - tpcni's stderr, which the CNI runtime logs - besides the request's own
error."""

from __future__ import annotations

import threading

from tuplenet.store.transport import Transport


def test_preconnect_never_raises() -> None:
    escaped: list[BaseException] = []
    t = Transport("http://a..b:2379", timeout=2)
    thread = threading.Thread(target=lambda: _run(t, escaped))
    thread.start()
    thread.join(10)
    assert not escaped, f"preconnect raised {escaped[0]!r}"


def _run(t: Transport, escaped: list[BaseException]) -> None:
    try:
        t.preconnect()
    except BaseException as exc:  # noqa: BLE001 - what would reach threading.excepthook
        escaped.append(exc)

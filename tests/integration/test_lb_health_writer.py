"""The health-verdict writer against a real etcd: leased puts, deletes, adoption of our own verdicts only,
and a lease that expired (etcd lost it) re-granted with every held verdict put again."""

from __future__ import annotations

from tuplenet.agent.healthcheck_service import VerdictWriter
from tuplenet.sandbox.procs import wait_for
from tuplenet.store import Store

K1 = "communicate/lb_health/LS/LS-A/web/10.10.1.2:80"
K2 = "communicate/lb_health/LR/LR-1/api/10.10.2.2:443"


def test_writer_puts_leased_verdicts_and_survives_a_lost_lease(etcd, prefix: str) -> None:
    store = Store(etcd.endpoint, prefix=prefix)
    w = VerdictWriter(store, "hv1", ttl=3).start()
    try:
        w.submit(K1, True)
        w.submit(K2, True)
        wait_for(lambda: store.get(K1) and store.get(K2), timeout=10, what="verdicts written")
        kv = store.get(K1)
        assert kv.value == "state=down,chassis=hv1" and kv.lease and store.get(K2).lease == kv.lease

        # Adoption finds ours only (another chassis' verdict and garbage are not ours).
        store.put("communicate/lb_health/LS/LS-A/web/10.10.1.3:80", "state=down,chassis=hv2")
        store.put("communicate/lb_health/LS/LS-A/web/bad", "state=down,chassis=hv1")
        assert w.adopt() == {K1, K2}

        # etcd loses the lease (revoked behind our back): the keys go, the keepalive re-grants and the writer
        # puts every held verdict again under the new lease.
        store.lease(kv.lease, 3).revoke()
        wait_for(lambda: store.get(K1) is not None and store.get(K1).lease not in (0, kv.lease), timeout=15,
                 interval=0.1, what="verdict re-put under a new lease")
        assert store.get(K2) is not None and store.get(K2).lease == store.get(K1).lease

        # Back in service: deleted.
        w.submit(K1, False)
        # the writer counts a delete after etcd applied it: wait for the count too, not just the key
        wait_for(lambda: store.get(K1) is None and w.deletes == 1, timeout=10, what="verdict deleted")
        assert w.puts >= 4 and w.deletes == 1 and w.errors == 0 and w.down == {K2}
    finally:
        w.stop()
        store.close()

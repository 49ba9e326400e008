"""Connection ramp: at most `limit` setups at once, FIFO, and setups of stopped accounts dropped."""
import threading

from sidecar.pool import Pool, Ramp


def test_ramp_runs_in_order_within_the_limit_and_drops_skipped_jobs():
    pool = Pool(4, name="ramp-test")
    ramp = Ramp(pool, limit=1)
    gate, ran, done, started = threading.Event(), [], threading.Event(), threading.Event()
    try:
        ramp.submit(lambda: (ran.append("first"), started.set(), gate.wait(5)))
        ramp.submit(lambda: ran.append("stopped meanwhile"), skip=lambda: True)
        ramp.submit(lambda: (ran.append("second"), done.set()))
        assert started.wait(5)
        assert ramp.pending() == 3 and ran == ["first"]   # one at a time
        gate.set()
        assert done.wait(5)
        assert ran == ["first", "second"]
    finally:
        gate.set()
        pool.shutdown()

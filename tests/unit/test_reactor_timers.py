"""Timer-only arms the reactor applies without a wake-up still fire on time, and sooner ones wake it."""
import threading
import time
import types

from sidecar.idle import Reactor


def test_timers_fire_whether_or_not_their_arm_woke_the_loop():
    fired = {}
    done = threading.Event()

    def dispatch(account, reason, token):
        fired[account.name] = time.time()
        if len(fired) == 3:
            done.set()

    reactor = Reactor(dispatch)
    wakes = []
    wake = reactor._wake
    reactor._wake = lambda: (wakes.append(1), wake())
    reactor.start()
    a, b, c = (types.SimpleNamespace(name=n) for n in "abc")
    try:
        start = time.time()
        reactor.arm(a, None, start + 0.6)
        time.sleep(0.2)                      # the loop sleeps until a's timer
        woken = len(wakes)
        reactor.arm(b, None, start + 0.8)    # later than the loop's sleep: no wake-up
        assert len(wakes) == woken
        reactor.arm(c, None, start + 0.3)    # sooner: the loop must wake for it
        assert len(wakes) == woken + 1
        assert done.wait(5)
        assert 0.25 <= fired["c"] - start < 0.55
        assert 0.55 <= fired["a"] - start < 0.9
        assert 0.75 <= fired["b"] - start < 1.3
    finally:
        reactor.stop()


def test_a_superseded_arm_does_not_fire():
    fired = []
    reactor = Reactor(lambda account, reason, token: fired.append(account.name))
    reactor.start()
    a = types.SimpleNamespace(name="a")
    try:
        reactor.arm(a, None, time.time() + 0.1)
        reactor.disarm(a)                    # an op borrowed the paused account
        reactor.arm(a, None, time.time() + 0.2)
        time.sleep(0.5)
        assert fired == ["a"]
    finally:
        reactor.stop()

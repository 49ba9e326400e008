"""The reactor watches a socket whose fd number a closed, never-disarmed socket had."""
import socket
import threading
import time
import types

from sidecar.idle import Reactor


def test_fd_number_reused_after_an_unseen_close_is_still_watched():
    fired = []
    got = threading.Event()

    def dispatch(account, reason, token):
        fired.append((account.name, reason))
        if account.name == "b":
            got.set()

    reactor = Reactor(dispatch)
    reactor.start()
    a, b = types.SimpleNamespace(name="a"), types.SimpleNamespace(name="b")
    try:
        s1, peer1 = socket.socketpair()
        reactor.arm(a, s1, time.time() + 60)
        time.sleep(0.2)            # registered
        fd = s1.fileno()
        s1.close()                 # closed under the reactor: the kernel drops it from epoll
        peer1.close()
        s2, peer2 = socket.socketpair()
        if fd not in (s2.fileno(), peer2.fileno()):
            return                 # the OS gave another number: nothing to show here
        mine, other = (s2, peer2) if s2.fileno() == fd else (peer2, s2)
        reactor.arm(b, mine, time.time() + 60)
        other.send(b"* 1 EXISTS\r\n")
        assert got.wait(2), fired
        mine.close()
        other.close()
    finally:
        reactor.stop()

"""Per-account runtime of the state machine in sidecar.fsm: connect, IDLE, drop, retry.

One Account per owned account id. Its main connection logs in, runs the sync hooks, then IDLEs
(or NOOP-polls) under the reactor; ops borrow it with IDLE paused or use an extra connection
(sidecar.extra). Failures retry with backoff from reactor timers. The state is written to the
account record in Redis on every persisted transition, so the API (and a replica taking the
account over after a restart) sees it.
The transitions are drawn and coded in sidecar/fsm.py.
"""
from __future__ import annotations

import logging
import random
import socket
import threading
import time

from imapapi import accounts, errors, events, leases
from imapapi.ids import MailboxRegistry

from . import idle, metrics
from .imap import compat
from .backoff import Backoff
from .connection import ConnectFailure, close_quietly, connect, is_connection_error
from .extra import ExtraPool
from .fsm import PERSISTED, imap_signature, transition
from .runtime import Runtime

log = logging.getLogger(__name__)

IDLE_REFRESH = 25 * 60     # re-issue IDLE well before servers' 29/30 min IDLE timeout
POLL_INTERVAL = 30.0       # NOOP polling period for servers without IDLE
RESUME_GRACE = 0.1         # after an op, wait this long for the next one before re-IDLEing
SETUP_DROP_STEP = 0.5      # retry delay grows by this per consecutive drop during setup ...
SETUP_DROP_CAP = 5.0       # ... up to this (plus 0-1 s jitter): never the connect backoff


def _abort(client) -> None:
    """Shut the connection's socket down without touching imaplib's state (see stop())."""
    try:
        socket.socket.shutdown(compat.raw_socket(client), socket.SHUT_RDWR)
    except Exception:
        pass   # None, or closed already


class Session:
    """What sync hooks see (documented in sidecar/hooks.py)."""

    def __init__(self, account_id, redis, settings):
        self.account = account_id
        self.client = None
        self.capabilities: set[str] = set()
        self.redis = redis
        self.settings = settings
        self.registry = MailboxRegistry(redis, account_id)
        self.record: dict = {}
        self.next_tick = float("inf")
        # The account's lease token (imapapi.leases): every write for the account carries it
        # and is refused once another replica took the account over. None: no leases (tests).
        self.fence: int | None = None
        # Kept here for the sync engine (sidecar.sync.engine), per connection:
        self.sync_ctx = None            # its per-connection context, None until on_connected
        self.qresync_enabled = False    # ENABLE QRESYNC succeeded on this connection
        self.logins = None              # the runtime's LoginGate (sync.probe's logins are paced)


class Account:
    """One account: its main connection (IDLE), extra command connections, retries."""

    def __init__(self, runtime: Runtime, account_id: str, record: dict,
                 lease: int | None = None):
        self.runtime = runtime
        self.lease = lease        # the lease token this object was created under (never changes)
        self.id = account_id
        self.record = record
        self.signature = imap_signature(record)
        self.raw_seen = None      # the stored settings' bytes last found matching `signature`
        self.state = "init"
        self.error_event: tuple | None = None   # (state, response) of the last error event sent
        self.lock = threading.Lock()          # held by whoever talks on the main connection
        self.rewake = False       # a wake-up found the lock busy: the holder re-arms on release
        self.client = None
        self.idling = False
        self.paused = False       # out of IDLE between ops (lock free), resumed after RESUME_GRACE
        self.idle_since = 0.0
        self.stopped = False
        self.connect_queued = False
        self.backoff = Backoff()
        self.setup_drops = 0      # consecutive sessions lost during setup (see _setup_dropped)
        self.session = Session(account_id, runtime.redis, runtime.settings)
        self.session.logins = runtime.logins
        self.session.fence = lease
        self.extras = ExtraPool(self)

    # -- state -------------------------------------------------------------------------------
    def _move(self, event: str, error: dict | None = None) -> None:
        if self.stopped:
            return   # a job that finished after stop() must not touch state
        metrics.on_transition(self.state, event)
        self.state = transition(self.state, event)
        if self.state in PERSISTED:
            try:
                self._store_state(error)
            except leases.Fenced:
                self._fenced()
            except Exception as exc:   # Redis down: keep running, the next transition writes again
                log.warning("%s: could not store state %s: %s", self.id, self.state, exc)

    def _store_state(self, error: dict | None = None) -> None:
        if self.lease is None:
            accounts.set_state(self.runtime.redis, self.id, self.state, error)
        else:
            leases.set_state(self.runtime.redis, self.id, self.lease, self.state, error)

    def persist_state(self) -> None:
        """Write the in-memory state again (repairs a state another replica overwrote)."""
        if not self.stopped and self.state in PERSISTED:
            try:
                self._store_state()
            except leases.Fenced:
                self._fenced()

    def _fenced(self) -> None:
        """A write was refused: another replica holds the account now. Stop, quietly: the
        connection goes too (in the pool, once whoever holds the lock lets go)."""
        if not self.stopped:
            log.warning("%s: write refused, lease %s is not current; dropping", self.id, self.lease)
        self.stopped = True
        self.runtime.pool.submit(self.stop, 0.5, False)
        if self.runtime.leases is not None:
            self.runtime.leases.lost(self.id, self.lease)

    @property
    def connected(self) -> bool:
        return self.state == "connected" and self.client is not None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.stopped:
            return
        self._move("start")
        if not self.connect_queued:   # one queued setup is enough: it reloads the record
            self.connect_queued = True
            self.runtime.ramp.submit(self._connect_job, skip=lambda: self.stopped)

    def _connect_job(self) -> None:
        self.connect_queued = False
        with self.lock:
            try:
                self._connect_locked()
            except Exception as exc:   # Redis error, hook bug...: never leave the account stuck
                log.exception("%s: connection setup failed", self.id)
                self._close_main(logout=False)
                if self.state == "connecting":
                    self._failed(ConnectFailure("connectError", str(exc) or type(exc).__name__))

    def _connect_locked(self) -> None:
        if self.stopped:
            return
        self.runtime.reactor.disarm(self)
        self._close_main()
        if self.state != "connecting":
            self._move("start")
        record = accounts.get_record(self.runtime.redis, self.id)
        if record is None:
            return   # deleted meanwhile; the supervisor stops us
        self.record = record
        self.session.record = record
        if self.runtime.logins is not None:
            # per-IMAP-host pacing across replicas: a handover is no login flood
            self.runtime.logins.wait((record.get("imap") or {}).get("host"), self.runtime.stopping)
        if self.stopped or (self.runtime.leases is not None and self.lease is not None
                            and not self.runtime.leases.valid(self.id)):
            return   # handed over or lease lost while waiting: never log in without the lease
        try:
            client, caps = connect(record.get("imap"), self.runtime.settings.command_timeout,
                                   account=self.id, redis=self.runtime.redis)
        except ConnectFailure as exc:
            self._failed(exc)
            return
        self.client = client
        self.session.client, self.session.capabilities = client, caps
        try:
            self.runtime.hooks.on_connected(self.session)
        except leases.Fenced:
            self._close_main(logout=False)
            self._fenced()
            return
        except Exception as exc:
            log.warning("%s: setup after login failed: %s", self.id, exc)
            dropped = is_connection_error(exc)
            self._close_main(logout=not dropped)
            if dropped:
                self._setup_dropped(exc)
            else:
                self._failed(ConnectFailure("connectError", str(exc) or type(exc).__name__, None))
            return
        if self.stopped:
            self._close_main()
            return
        self.backoff.reset()
        self.setup_drops = 0
        self._move("ok")
        self.error_event = None   # the next failure is news again
        try:
            self._arm()
        except Exception as exc:   # e.g. the server refused IDLE: start over
            self._dropped(exc)

    def _setup_dropped(self, exc: BaseException) -> None:
        """The login worked, then the session ended during the first sync: Dovecot ends a
        session whose selected folder another client deleted ("Mailbox was deleted under us"),
        or the sync found the server's folder list stale. The server is up and the credentials
        are good: state disconnected (no connectError event) and a retry within ~1-6 s. The
        connect backoff here doubled on every such drop in a row: under folder churn an
        account waited minutes (issue 14's 5 min stall in the 10,000-change run)."""
        if self.stopped:
            return
        self.setup_drops += 1
        self._move("dropped", {"response": str(exc) or "Connection closed",
                               "serverResponseCode": "ECONNRESET"})
        wait = min(SETUP_DROP_CAP, SETUP_DROP_STEP * self.setup_drops) + random.random()
        log.info("%s: session lost during setup (%s in a row), retry in %.1fs",
                 self.id, self.setup_drops, wait)
        self.runtime.reactor.arm(self, None, time.time() + wait)

    def _failed(self, exc: ConnectFailure) -> None:
        if self.stopped:
            return
        auth = exc.state == "authenticationError"
        self._move("auth_failed" if auth else "connect_failed", exc.error)
        self._error_event(exc)
        wait = self.backoff.next(auth=auth)
        log.info("%s: %s (%s), retry in %.0fs", self.id, exc.state, exc.error["response"], wait)
        self.runtime.reactor.arm(self, None, time.time() + wait)

    def _error_event(self, exc: ConnectFailure) -> None:
        """authenticationError/connectError webhook + feed event, once per distinct error until
        the next successful login (retries with backoff must not flood the receiver)."""
        key = (exc.state, exc.error.get("response"))
        if key == self.error_event:
            return
        self.error_event = key
        try:
            events.emit_account_event(self.runtime.redis, self.id, exc.state, exc.error,
                                      fence=self.lease)
        except leases.Fenced:
            self._fenced()
        except Exception:
            log.exception("%s: %s event not recorded", self.id, exc.state)

    def _dropped(self, exc: BaseException | None) -> None:
        """Main connection broken (lock held): state disconnected, reconnect soon."""
        log.info("%s: connection lost: %s", self.id, exc)
        self.runtime.reactor.disarm(self)
        self._close_main(logout=False)
        if self.state == "connected":
            self._move("dropped", {"response": str(exc) or "Connection closed",
                                   "serverResponseCode": "ECONNRESET"})
        if not self.stopped:
            # Spread reconnects when a server restart drops everyone at once.
            self.runtime.reactor.arm(self, None, time.time() + 0.5 + 2 * random.random())

    def _close_main(self, logout: bool = True) -> None:
        if self.client is None:
            return
        client, self.client, self.session.client = self.client, None, None
        try:
            if self.idling and logout:
                idle.idle_done(client)
        except Exception:
            logout = False
        self.idling = self.paused = False
        close_quietly(client, logout=logout)
        try:
            self.runtime.hooks.on_disconnected(self.session)
        except Exception:
            log.exception("%s: on_disconnected hook failed", self.id)

    def stop(self, wait: float = 5.0, logout: bool = True) -> None:
        """Close everything (deleted, handed over, or shutting down). logout=False: the lease
        is lost, another replica may be connected already: just drop the socket, say nothing."""
        self.stopped = True
        self.runtime.reactor.disarm(self, final=True)
        got = self.lock.acquire(timeout=wait)
        try:
            if got:
                self._close_main(logout=logout)
            else:
                # Another thread is mid-command on it (a sync, a login, an op). A LOGOUT from
                # here would interleave with its reads (imaplib is not thread-safe: a FETCH line
                # can get lost and that sync commit a view missing a change), and closing the
                # buffered file waits for its read. Shutting the socket down ends the session
                # at once; that thread's read fails, it commits nothing and closes the client.
                _abort(self.client)
        finally:
            if got:
                self.lock.release()
        self.extras.close_all()
        self.state = transition(self.state, "stop")

    def restart(self) -> None:
        """Settings changed: reconnect now with the new ones (fresh backoff)."""
        self.backoff.reset()
        # In the pool: this runs on the supervisor's channel thread, and LOGOUT on a stalled
        # server waits out its timeout, which would delay every other account's change.
        self.runtime.pool.submit(self.extras.close_all)
        self.start()

    # -- IDLE / polling ----------------------------------------------------------------------
    def _arm(self) -> None:
        """(lock held, no command running) start IDLE or schedule a NOOP poll."""
        client, now = self.client, time.time()
        if "IDLE" in self.session.capabilities:
            if not self.idling:
                early = idle.start_idle(client)
                self.idling, self.idle_since = True, now
                early = [r for r in early if not (r and r[0] == b"OK")]
                if early:   # pushed right before "+ idling": the hooks ask for a tick now
                    self.runtime.hooks.on_idle_responses(self.session, early)
            when = min(self.idle_since + IDLE_REFRESH, self.session.next_tick)
            if idle.has_buffered(client):
                self.runtime.reactor.arm(self, None, now)   # select() can't see these bytes
            else:
                self.runtime.reactor.arm(self, client.socket(), when)
        else:
            self.runtime.reactor.arm(self, None, min(now + POLL_INTERVAL, self.session.next_tick))

    def on_event(self, reason: str, token: int) -> None:
        """Pool job for a reactor wake-up: retry timer, readable socket, IDLE refresh or tick."""
        reactor = self.runtime.reactor
        if self.stopped or not reactor.current(self, token):
            return
        if self.client is None and self.state != "connected":
            if self.state in ("connectError", "authenticationError", "disconnected"):
                self.start()
            return
        if not self.lock.acquire(blocking=False):
            # Busy: an op (it re-arms when done) or the previous wake-up, which may already have
            # armed the registration that fired us. Leave a note for the holder, then try once
            # more (it may have let go meanwhile); else the holder re-arms when it sees the note.
            self.rewake = True
            if not self.lock.acquire(blocking=False):
                return
        try:
            self.rewake = False
            if reactor.current(self, token) and self.client is not None:
                self._service()
        except leases.Fenced:
            self._close_main(logout=False)
            self._fenced()
        except Exception as exc:
            if is_connection_error(exc):
                self._dropped(exc)
            else:
                log.exception("%s: idle handling failed", self.id)
                self._dropped(exc)
        finally:
            self.lock.release()
            if self.rewake and not self.stopped and self.client is not None:
                # a wake-up came while we held the lock: its registration is used up
                self.rewake = False
                self.runtime.reactor.arm(self, None, time.time())

    def _service(self) -> None:
        client, now = self.client, time.time()
        responses = []
        if self.paused:
            # No op came within RESUME_GRACE: back to the idle folder and IDLE.
            self.paused = False
            self.runtime.hooks.resume(self.session)
            self._arm()
            return
        if self.idling:
            responses = idle.read_available(client)
            if any(r and r[0] == b"BYE" for r in responses):
                raise ConnectionResetError("server said BYE")
            if (idle.is_keepalive(responses) and now < self.idle_since + IDLE_REFRESH
                    and now < self.session.next_tick):
                self._arm()
                return
            responses += idle.idle_done(client)[1]
            self.idling = False
        else:
            responses = client.noop()[1]
        hooks = self.runtime.hooks
        changes = [r for r in responses if not (r and r[0] == b"OK")]
        if changes:
            hooks.on_idle_responses(self.session, changes)
        if time.time() >= self.session.next_tick:
            hooks.on_tick(self.session)
        self._arm()

    # -- borrowing for ops -------------------------------------------------------------------
    def borrow_main(self, wait: float):
        """-> the main client with IDLE paused (lock held), or None when it is busy."""
        if not self.connected:
            raise errors.Unavailable()
        if not self.lock.acquire(timeout=wait):
            return None
        try:
            if self.client is None:
                raise errors.Unavailable()
            self.runtime.reactor.disarm(self)
            self.paused = False
            if self.idling:
                self.idling = False
                responses = idle.idle_done(self.client)[1]
                changes = [r for r in responses if not (r and r[0] == b"OK")]
                if changes:
                    self.runtime.hooks.on_idle_responses(self.session, changes)
            return self.client
        except Exception as exc:
            if not isinstance(exc, errors.ApiError):
                self._dropped(exc)
            self.lock.release()
            raise

    def release_main(self, exc: BaseException | None = None) -> None:
        """After an op: keep the connection out of IDLE for RESUME_GRACE (a following op skips
        DONE/resume/IDLE), then resume the idle folder and IDLE; or handle a broken connection."""
        try:
            if exc is not None and is_connection_error(exc):
                self._dropped(exc)
                return
            if self.client is None or self.stopped:
                return
            self.paused = True
            self.runtime.reactor.arm(self, None, time.time() + RESUME_GRACE)
        finally:
            self.lock.release()

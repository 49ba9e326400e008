"""The sidecar's process-wide services, one typed object handed to accounts and the command server."""
from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

from redis import Redis

from imapapi.settings import Settings

from .hooks import SyncHooks
from .idle import Reactor
from .leasing import LeaseKeeper
from .loginrate import LoginGate
from .pool import Pool, Ramp
from .sync.engine import SyncEngine


@dataclass
class Runtime:
    """What an Account (and an op, through its OpContext) may use; nothing else is shared.

    sid       this sidecar's id (its command queue and its owner entries carry it)
    redis     the Redis client
    settings  imapapi.settings.Settings of this process
    pool      worker threads for every job: reactor wake-ups, ops, LOGOUTs
    ramp      bounded connection setups (`ramp.submit(fn)`), FIFO, on their own threads
    reactor   the selector/timer thread accounts arm themselves with
    hooks     change detection (sidecar.hooks.SyncHooks; sidecar.sync.engine.SyncEngine)
    stopping  set once the process shuts down
    leases    this replica's account leases (sidecar.leasing.LeaseKeeper): tokens, lost()
    logins    per-IMAP-host login pacing shared by all replicas (sidecar.loginrate.LoginGate)
    """

    sid: str
    redis: Redis
    settings: Settings
    pool: Pool
    ramp: Ramp
    reactor: Reactor
    hooks: SyncHooks
    stopping: threading.Event = field(default_factory=threading.Event)
    leases: LeaseKeeper | None = None
    logins: LoginGate | None = None


def load_hooks() -> SyncHooks:
    """The change-detection engine (bench/idle_accounts.py swaps this for plain SyncHooks)."""
    return SyncEngine()


def build(settings: Settings, redis: Redis) -> Runtime:
    """Pool, ramp, reactor and hooks for one sidecar process (threads start with the pool;
    the reactor thread starts in Supervisor.run)."""
    sid = settings.sidecar_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    pool = Pool(settings.sidecar_pool)
    # Connection setups run on their own `connectRamp` threads: behind the wake-ups and sweeps
    # of a thousand connected accounts in the shared pool they starved (841 of 1,000 connected
    # after 300 s), and a busy pool must not slow a restart's reconnects either.
    ramp = Ramp(Pool(settings.sidecar_connect_ramp, name="connect"),
                settings.sidecar_connect_ramp, settings.sidecar_connect_rate)
    # A wake-up runs the account's handler in the pool, never on the selector thread.
    reactor = Reactor(lambda account, reason, token: pool.submit(account.on_event, reason, token))
    return Runtime(sid=sid, redis=redis, settings=settings, pool=pool, ramp=ramp,
                   reactor=reactor, hooks=load_hooks(),
                   logins=LoginGate(redis, settings.imap_login_rate))

"""Command server: BRPOP wire.Commands for this sidecar, run ops on pool threads, RPUSH one Reply each."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from imapapi import errors, keys, rpc, wire

from .account import Account
from .connection import translate
from .context import OpContext
from .ops import load_all
from .runtime import Runtime

log = logging.getLogger(__name__)


class CommandServer:
    def __init__(self, runtime: Runtime, find_account: Callable[[str], Account | None]):
        self.runtime = runtime
        self.find_account = find_account
        self.ops = load_all()
        self.queue_key = keys.sidecar_commands(runtime.sid)
        self._stopped = threading.Event()

    def start(self):
        self.runtime.pool.submit(self._listen)

    def join(self, timeout: float):
        self._stopped.wait(timeout)

    def _listen(self):
        """BRPOP on a pool thread; the thread that takes a command hands the listening to
        another pool thread, then runs the command itself. A listener that passed every
        command on to the pool put a second thread wake-up on each request's path (several
        ms on a loaded machine). One pool thread is always the listener."""
        redis, stopping = self.runtime.redis, self.runtime.stopping
        handed = False
        try:
            while not stopping.is_set():
                command = self._take(redis, stopping)
                if command is not None:
                    self.runtime.pool.submit(self._listen)
                    handed = True
                    self.execute(command)
                    return
        finally:
            if not handed:
                if stopping.is_set():
                    self._stopped.set()
                else:   # an unexpected error ended this listener: there must always be one
                    stopping.wait(1)
                    self.runtime.pool.submit(self._listen)

    def _take(self, redis, stopping) -> wire.Command | None:
        """The next live command, or None after a quiet second (or a dropped command)."""
        try:
            got = redis.brpop([self.queue_key], timeout=1)
        except Exception as exc:
            log.warning("command queue read failed: %s", exc)
            stopping.wait(1)
            return None
        if got is None:
            return None
        try:
            command = wire.Command.loads(got[1])
        except (ValueError, TypeError) as exc:
            log.warning("dropping malformed command: %s", exc)
            return None
        if command.expired():
            log.info("dropping expired command %s %s", command.op, command.id)
            return None
        return command

    def send(self, reply: wire.Reply) -> None:
        rpc.send_reply(self.runtime.redis, reply)

    def execute(self, command: wire.Command) -> None:
        """Run one command; every outcome becomes exactly one Reply (or stream end/error frame)."""
        if command.expired():
            return   # waited in the pool queue past its deadline: nobody reads the reply
        ctx = None
        try:
            account = self.find_account(command.account)
            if account is None or account.stopped:
                raise errors.Unavailable("This account is not handled by this sidecar")
            fn = self.ops.get(command.op)
            if fn is None:
                raise errors.BadRequest(f"Unknown operation {command.op!r}", code="UnknownOperation")
            ctx = OpContext(self.runtime, account, command, self.send)
            result = fn(ctx, **(command.args or {}))
            if ctx.writer is not None:
                ctx.writer.close(result if isinstance(result, dict) else None)
            else:
                self.send(wire.Reply(id=command.id, ok=True, result=result))
        except Exception as exc:
            err = translate(exc)
            if err is None:
                log.exception("op %s failed for %s", command.op, command.account)
                err = errors.ApiError()
            elif err.status >= 500:
                log.info("op %s for %s: %s %s", command.op, command.account, err.code, err.message)
            try:
                if ctx is not None and ctx.writer is not None:
                    ctx.writer.fail(err.to_dict())
                else:
                    self.send(wire.Reply(id=command.id, ok=False, error=err.to_dict()))
            except Exception:
                log.exception("could not send the reply for %s", command.id)
        finally:
            if ctx is not None:
                ctx.finish()

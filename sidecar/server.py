"""Command server: BRPOP wire.Commands for this sidecar, run ops in the pool, RPUSH one Reply each."""
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
        self._thread = threading.Thread(target=self._run, name="command-server", daemon=True)

    def start(self):
        self._thread.start()

    def join(self, timeout: float):
        self._thread.join(timeout)

    def _run(self):
        redis, stopping = self.runtime.redis, self.runtime.stopping
        while not stopping.is_set():
            try:
                got = redis.brpop([self.queue_key], timeout=1)
            except Exception as exc:
                log.warning("command queue read failed: %s", exc)
                stopping.wait(1)
                continue
            if got is None:
                continue
            try:
                command = wire.Command.loads(got[1])
            except (ValueError, TypeError) as exc:
                log.warning("dropping malformed command: %s", exc)
                continue
            if command.expired():
                log.info("dropping expired command %s %s", command.op, command.id)
                continue
            self.runtime.pool.submit(self.execute, command)

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

"""Command server: BRPOP wire.Commands for this sidecar, run ops on pool threads, RPUSH one Reply each."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from redis.exceptions import NoScriptError

from imapapi import errors, keys, rpc, wire

from .account import Account
from .connection import translate
from .context import OpContext
from .ops import load_all
from .runtime import Runtime

log = logging.getLogger(__name__)

# Listeners kept waiting in BRPOP. With two, the one that takes a command runs it and writes
# its reply together with its next BRPOP while the other waits: a read wakes one sidecar
# thread once and costs one round trip. With one, every command would hand the listening to
# another pool thread: a second wake-up, and a second thread wanting the GIL, on its path.
# More are started while commands run (one always waits), so a slow op holds up nothing.
SPARE = 2


class Link:
    """A listener's own Redis connection: the last command's reply and the next BRPOP go in
    one packet. No redis-py command path (its retry wrapper, pool and observability
    bookkeeping per command were ~a quarter of the sidecar's CPU per single-message read)."""

    def __init__(self, redis, queue_key: str):
        self.pool = redis.connection_pool
        self.queue_key = queue_key
        self.conn = None

    def send(self, reply_command: tuple | None) -> None:
        """Write the reply's command (if any) and BRPOP: Redis runs the reply first (the API
        wakes), then the BRPOP blocks."""
        commands = [("BRPOP", self.queue_key, 1)]
        if reply_command is not None:
            commands.insert(0, reply_command)
        if self.conn is None:
            self.conn = self.pool.get_connection()
        self.conn.send_packed_command(self.conn.pack_commands(commands))

    def read(self):
        return self.conn.read_response()

    def drop(self) -> None:
        """After an error: an answer may still be unread, the connection is not reusable."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.disconnect()
            self.pool.release(conn)

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            self.pool.release(conn)


class CommandServer:
    def __init__(self, runtime: Runtime, find_account: Callable[[str], Account | None]):
        self.runtime = runtime
        self.find_account = find_account
        self.ops = load_all()
        self.queue_key = keys.sidecar_commands(runtime.sid)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._waiting = 0    # listeners in BRPOP or on their way to it
        self._alive = 0

    def start(self):
        for _ in range(SPARE):
            self._spawn()

    def join(self, timeout: float):
        self._stopped.wait(timeout)

    def _spawn(self):
        with self._lock:
            self._waiting += 1
            self._alive += 1
        self.runtime.pool.submit(self._listen)

    def _listen(self):
        """One listener on a pool thread: BRPOP, run the command on this thread, write its
        reply with the next BRPOP. It retires after a command when SPARE others wait, and
        starts one more when it takes a command while none other waits."""
        stopping = self.runtime.stopping
        link = Link(self.runtime.redis, self.queue_key)
        reply = ctx = None
        waiting, ended = True, False
        try:
            while not stopping.is_set():
                last, reply, ctx = (reply, ctx), None, None
                command = self._take(link, *last)
                if command is None:
                    continue
                with self._lock:
                    self._waiting -= 1
                    none_left = self._waiting < 1
                waiting = False
                if none_left:
                    self._spawn()
                reply, ctx = self.run(command)
                with self._lock:
                    if self._waiting >= SPARE:
                        break
                    self._waiting += 1
                waiting = True
            ended = True
        finally:
            self._deliver(reply, ctx)
            if ended:
                link.close()
            else:   # an unexpected error ended this listener: replace it
                link.drop()
                if not stopping.wait(1):
                    self._spawn()
            with self._lock:
                self._alive -= 1
                self._waiting -= waiting
                gone = self._alive == 0
            if gone and stopping.is_set():
                self._stopped.set()

    def _take(self, link: Link, reply: wire.Reply | None, ctx) -> wire.Command | None:
        """Write the last command's reply (if any) with the BRPOP for the next one, give its
        account back once the reply is in Redis -> the next live command, or None after a
        quiet second (or a dropped command)."""
        try:
            try:
                link.send(None if reply is None else self._reply_command(reply))
                if reply is not None:
                    try:
                        link.read()
                    except NoScriptError:   # first reply on this Redis: EVAL, other connection
                        rpc.send_reply(self.runtime.redis, reply)
                    reply = None
            finally:
                self._deliver(reply, ctx)   # a reply not known to be written goes again
            got = link.read()
        except Exception as exc:
            link.drop()
            log.warning("command queue read failed: %s", exc)
            self.runtime.stopping.wait(1)
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

    @staticmethod
    def _reply_command(reply: wire.Reply) -> tuple:
        try:
            return rpc.reply_command(reply)
        except (TypeError, ValueError):   # a result JSON cannot carry: still one answer, a 500
            log.exception("reply for %s could not be serialized", reply.id)
            return rpc.reply_command(wire.Reply(id=reply.id, ok=False,
                                                error=errors.ApiError().to_dict()))

    def _deliver(self, reply: wire.Reply | None, ctx: OpContext | None) -> None:
        """Send a reply through the shared client, then give the account back (ctx.finish)."""
        try:
            if reply is not None:
                self.send(reply)
        except Exception:
            log.exception("could not send the reply for %s", reply.id)
        finally:
            if ctx is not None:
                ctx.finish()

    def execute(self, command: wire.Command) -> None:
        """Run one command and send its reply (the listeners write theirs with the next BRPOP)."""
        self._deliver(*self.run(command))

    def run(self, command: wire.Command) -> tuple[wire.Reply | None, OpContext | None]:
        """Run one command -> its Reply (None when it streamed, or expired) and its context,
        to finish once the reply is sent: every outcome is exactly one Reply or stream end."""
        if command.expired():
            return None, None   # waited past its deadline: nobody reads the reply
        made: list[OpContext] = []
        try:
            return self._outcome(command, made), (made[0] if made else None)
        except BaseException:   # not even an error reply: the account must still come back
            if made:
                made[0].finish()
            raise

    def _outcome(self, command: wire.Command, made: list) -> wire.Reply | None:
        ctx = None
        try:
            account = self.find_account(command.account)
            if account is None or account.stopped:
                raise errors.Unavailable("This account is not handled by this sidecar")
            fn = self.ops.get(command.op)
            if fn is None:
                raise errors.BadRequest(f"Unknown operation {command.op!r}", code="UnknownOperation")
            ctx = OpContext(self.runtime, account, command, self.send)
            made.append(ctx)
            result = fn(ctx, **(command.args or {}))
            if ctx.writer is None:
                return wire.Reply(id=command.id, ok=True, result=result)
            ctx.writer.close(result if isinstance(result, dict) else None)
            return None
        except Exception as exc:
            err = translate(exc)
            if err is None:
                log.exception("op %s failed for %s", command.op, command.account)
                err = errors.ApiError()
            elif err.status >= 500:
                log.info("op %s for %s: %s %s", command.op, command.account, err.code, err.message)
            if ctx is None or ctx.writer is None:
                return wire.Reply(id=command.id, ok=False, error=err.to_dict())
            try:
                ctx.writer.fail(err.to_dict())
            except Exception:
                log.exception("could not send the error frame for %s", command.id)
            return None

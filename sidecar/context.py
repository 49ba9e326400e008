"""What an op gets (OpContext) and how it streams bytes to the API (StreamWriter)."""
# Streaming contract: an op that returns bytes calls `ctx.stream(result)` once it knows the data
# exists (after its own checks). That call pushes the Reply at once, with `result` (e.g. content
# type, filename) and `stream` = keys.stream(command id), so the API starts reading while the op
# body keeps running and writes frames. Errors before `ctx.stream()` become a normal error Reply;
# errors after it become an error frame; when the op returns, an unclosed writer is closed with
# the returned value as end meta (dict) so the reader always sees an end or error frame.
from __future__ import annotations

import time
from contextlib import contextmanager

from imapapi import errors, keys, wire

from .connection import is_connection_error
from .runtime import Runtime

MAIN_WAIT = 0.05       # wait this long for a busy main connection before opening an extra one
STALL_LIMIT = 30.0     # a reader that takes no frame for this long has gone: abort the op


class StreamAborted(errors.GatewayTimeout):
    default_message = "Stream reader stopped reading"


class StreamWriter:
    def __init__(self, redis, command_id: str):
        self.redis = redis
        self.key = keys.stream(command_id)
        self.gone_key = keys.stream_gone(self.key)
        self.closed = False
        self.frames = 0
        self.backlog = 0

    def _push(self, frame: bytes) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self.key, frame)
        pipe.expire(self.key, wire.STREAM_TTL)
        self.backlog = pipe.execute()[0]   # RPUSH answers the list length: no extra LLEN
        self.frames += 1

    def _wait_window(self) -> None:
        waited, pause = 0.0, 0.001
        while self.backlog > wire.STREAM_WINDOW:
            # Short pauses: a fast reader drains the window in milliseconds.
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.02)
            self.backlog = self.queued()
            if waited >= STALL_LIMIT and self.backlog > wire.STREAM_WINDOW:
                raise StreamAborted()

    def queued(self) -> int:
        """Frames still unread; StreamAborted at once when the API said its client left (a
        download the client dropped would otherwise hold the account's connection for the
        whole stall limit, IDLE paused)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(self.key)
        pipe.exists(self.gone_key)
        backlog, gone = pipe.execute()
        if gone:
            raise StreamAborted()
        return backlog

    def write(self, data: bytes) -> None:
        """Queue bytes as data frames (STREAM_CHUNK each); blocks while the reader is behind."""
        if self.closed:
            raise ValueError("stream already closed")
        view = memoryview(data)
        for start in range(0, len(view), wire.STREAM_CHUNK):
            self._wait_window()
            self._push(wire.data_frame(view[start:start + wire.STREAM_CHUNK]))

    def write_frame(self, frame) -> None:
        """Queue one data frame built in place (wire.put_data_header): a memoryview goes to
        Redis as it is, no copy (redis-py packs memoryview arguments without joining them)."""
        if self.closed:
            raise ValueError("stream already closed")
        self._wait_window()
        self._push(frame)

    def close(self, meta: dict | None = None) -> None:
        if not self.closed:
            self.closed = True
            self._push(wire.end_frame(meta))

    def fail(self, error: dict) -> None:
        if not self.closed:
            self.closed = True
            self._push(wire.error_frame(error))


class OpContext:
    """Per-command view of the account for an op (see sidecar/ops/__init__.py)."""

    def __init__(self, runtime: Runtime, account, command: wire.Command, send_reply):
        self.account = account.id
        self.redis = runtime.redis
        self.settings = runtime.settings
        self.registry = account.session.registry
        self.command = command
        self.writer: StreamWriter | None = None
        self._main = None     # main connection borrowed by this op (lock held) until finish()
        self._acct = account
        self._send_reply = send_reply

    @contextmanager
    def client(self):
        """An IMAPClient for this op: the main connection with IDLE paused, else an extra one.

        The main connection stays with the op until `finish()` (called by the runtime after
        the reply is sent), so resuming IDLE never delays the reply and a second
        `ctx.client()` in the same op gets the same connection back."""
        acct = self._acct
        main = self._main or acct.borrow_main(MAIN_WAIT)
        if main is not None:
            self._main = main
            try:
                yield main
            except BaseException as exc:
                if is_connection_error(exc):
                    self._main = None
                    acct.release_main(exc)
                raise
            return
        # Wait for a free extra connection only as long as the caller still waits for us.
        left = (self.command.deadline - time.time()) if self.command.deadline else None
        extra = acct.extras.acquire(self.settings.command_timeout if left is None else left)
        broken = False
        try:
            yield extra
        except BaseException as exc:
            broken = is_connection_error(exc)
            raise
        finally:
            acct.extras.release(extra, broken)

    def finish(self) -> None:
        """After the reply went out: give the main connection back (resume folder, IDLE)."""
        if self._main is not None:
            self._main = None
            self._acct.release_main(None)

    def stream(self, result=None) -> StreamWriter:
        """Start a streamed result: the Reply (with `result` and the stream key) goes out now."""
        if self.writer is None:
            self.writer = StreamWriter(self.redis, self.command.id)
            self._send_reply(wire.Reply(id=self.command.id, ok=True, result=result,
                                        stream=self.writer.key))
        return self.writer

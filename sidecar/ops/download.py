"""Streamed ops messages.source (raw RFC 822) and messages.attachment (decoded part), chunk by chunk."""
from __future__ import annotations

import queue
import threading
import time

from imapapi import errors, ids, wire
from sidecar.context import STALL_LIMIT
from sidecar.imap import bodystructure
from sidecar.imap.fetch import iter_section
from sidecar.imap.textdecode import TransferDecoder

from .registry import op
from .msgutil import open_and_fetch

NOT_FOUND = "Requested file not found"
POLL = 0.004   # seconds between two looks at a full stream window


class Pump:
    """Writes chunks to the stream from a second thread, so reading the next chunk from IMAP
    overlaps with pushing the previous one to Redis instead of alternating with it.
    The bounded queue keeps the back-pressure: put() blocks while the reader is behind."""

    def __init__(self, writer, depth: int = 2):
        self.writer = writer
        self.sent = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="stream-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self._wait_room()
                    self.writer.write(item)
                    self.sent += len(item)
                except BaseException as exc:   # re-raised in the op's thread by put()/finish()
                    self.error = exc

    def _wait_room(self) -> None:
        """Wait until the reader has left room for the next chunk (4 of the window's 1 MiB
        frames still queued: 30 ms or more of work for the reader at 130 MB/s).

        StreamWriter backs off up to 20 ms when the window is full, so this polls on its own,
        every POLL: fine enough that the reader never runs dry, coarse enough that the LLENs
        of a reader slower than the server do not cost the sidecar more CPU than the
        download itself (at 2 ms they were about a third of its CPU per download)."""
        key, redis, limit = self.writer.key, self.writer.redis, wire.STREAM_WINDOW - 4
        if self.writer.backlog <= limit:
            return   # the list's length at our last push; the reader only shortens it
        deadline = time.monotonic() + STALL_LIMIT
        while redis.llen(key) > limit and time.monotonic() < deadline:
            time.sleep(POLL)

    def put(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        if data:
            self._queue.put(data)

    def finish(self) -> int:
        """Wait until everything queued is written; -> bytes sent."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.sent

    def abort(self) -> None:
        self.error = self.error or RuntimeError("aborted")
        self._queue.put(None)
        self._thread.join()


def pump_section(writer, client, uid: int, section: str, decoder=None) -> int:
    """Stream one section (decoded when a TransferDecoder is given) -> bytes sent."""
    pump = Pump(writer)
    try:
        for chunk in iter_section(client, uid, section):
            pump.put(decoder.feed(chunk) if decoder else chunk)
        if decoder:
            pump.put(decoder.finish())
    except BaseException:
        pump.abort()
        raise
    return pump.finish()


@op("messages.source")
def source(ctx, message: str):
    """-> stream of the message's bytes exactly as stored; result {size} goes out first."""
    with ctx.client() as client:
        try:
            _no, uid, _path, entry = open_and_fetch(ctx, client, message, ["UID", "RFC822.SIZE"])
            size = entry.get(b"RFC822.SIZE", 0)
        except errors.NotFound:
            raise errors.MessageNotFound(NOT_FOUND) from None
        writer = ctx.stream({"size": size, "contentType": "message/rfc822"})
        sent = pump_section(writer, client, uid, "")
    return {"size": sent}


@op("messages.attachment")
def attachment(ctx, attachment: str):
    """-> stream of one MIME part with its transfer encoding (base64/QP) decoded on the fly."""
    try:
        _mailbox_no, _uid, number = ids.decode_attachment_id(attachment)
    except errors.NotFound:
        raise errors.NotFound(NOT_FOUND, code="AttachmentNotFound") from None
    with ctx.client() as client:
        try:
            _no, uid, _path, entry = open_and_fetch(ctx, client, attachment,
                                                    ["UID", "BODYSTRUCTURE"])
        except errors.NotFound:
            raise errors.NotFound(NOT_FOUND, code="AttachmentNotFound") from None
        part = bodystructure.analyze(entry.get(b"BODYSTRUCTURE")).part(number)
        if part is None:
            raise errors.NotFound(NOT_FOUND, code="AttachmentNotFound")
        content_type = part.content_type
        if part.type == "text" and part.charset:
            # bytes are passed through undecoded, so the client needs the original charset
            content_type += f"; charset={part.charset}"
        writer = ctx.stream({"contentType": content_type, "filename": part.filename or None,
                             "encodedSize": part.size, "encoding": part.encoding})
        sent = pump_section(writer, client, uid, number, TransferDecoder(part.encoding))
    return {"size": sent}


"""Streamed ops messages.source (raw RFC 822) and messages.attachment (decoded part), chunk by chunk."""
from __future__ import annotations

import queue
import threading
import time

from imapapi import errors, ids, wire
from sidecar.context import STALL_LIMIT
from sidecar.imap import bodystructure, selection
from sidecar.imap.fetch import iter_section
from sidecar.imap.literal import fetch_streamed
from sidecar.imap.textdecode import TransferDecoder

from .registry import op
from .msgutil import open_and_fetch, open_for_read, open_message

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
                    self.sent += self._write(item)
                except BaseException as exc:   # re-raised in the op's thread by put()/finish()
                    self.error = exc
            self._written(item)

    def _write(self, data: bytes) -> int:
        self.writer.write(data)
        return len(data)

    def _written(self, item) -> None:
        """After an item was pushed (or dropped after an error)."""

    def _wait_room(self) -> None:
        """Wait until the reader has left room for the next chunk (4 of the window's 1 MiB
        frames still queued: 30 ms or more of work for the reader at 130 MB/s).

        StreamWriter backs off up to 20 ms when the window is full, so this polls on its own,
        every POLL: fine enough that the reader never runs dry, coarse enough that the LLENs
        of a reader slower than the server do not cost the sidecar more CPU than the
        download itself (at 2 ms they were about a third of its CPU per download)."""
        limit = wire.STREAM_WINDOW - 4
        if self.writer.backlog <= limit:
            return   # the list's length at our last push; the reader only shortens it
        deadline = time.monotonic() + STALL_LIMIT
        while self.writer.queued() > limit and time.monotonic() < deadline:
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


class FramePump(Pump):
    """Pump for frames built in place: the reader fills a free buffer behind the frame header,
    the pump thread pushes it as it is and hands it back. `buffers` buffers in all bound the
    memory (the reader waits in take() while all are in flight)."""

    def __init__(self, writer, buffers: int = 3, size: int = wire.STREAM_CHUNK):
        self._free: queue.Queue = queue.Queue()
        for _ in range(buffers):
            self._free.put(bytearray(wire.DATA_HEADER_SIZE + size))
        super().__init__(writer, depth=buffers)

    def take(self) -> bytearray:
        """A free buffer; blocks while every buffer waits to be pushed."""
        buffer = self._free.get()
        if self.error is not None:
            self._free.put(buffer)
            raise self.error
        return buffer

    def put_frame(self, buffer: bytearray, size: int) -> None:
        self._queue.put((buffer, size))

    def _write(self, item) -> int:
        buffer, size = item
        wire.put_data_header(buffer, size)
        with memoryview(buffer) as view:
            self.writer.write_frame(view[:wire.DATA_HEADER_SIZE + size])
        return size

    def _written(self, item) -> None:
        self._free.put(item[0])   # the buffer is free again


def pump_literal(writer, reader, size: int) -> int:
    """Stream a literal (sidecar/imap/literal.py) read straight into frame buffers -> bytes sent."""
    # Fixed 1 MiB frames: measured against 256 KiB, 512 KiB, 2 and 4 MiB and frames sized by
    # how busy the pump is (see docs/messages.md), they cost the least CPU per byte in all
    # processes together, which is what the download speed follows on a busy machine.
    pump = FramePump(writer)
    head = wire.DATA_HEADER_SIZE
    try:
        while reader.left:
            buffer = pump.take()
            with memoryview(buffer) as view:
                got = reader.readinto(view[head:head + wire.STREAM_CHUNK])
            pump.put_frame(buffer, got)
    except BaseException:
        pump.abort()
        raise
    return pump.finish()


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
    """-> stream of the message's bytes exactly as stored, read by one FETCH as they arrive;
    result {size, length} goes out with the literal's size."""
    sent = []

    def consume(size: int, reader) -> None:
        # the reply goes out once the literal's exact size is known: the API sends `length` as
        # Content-Length (RFC822.SIZE is the server's estimate on some servers, not a promise)
        writer = ctx.stream({"size": size, "length": size, "contentType": "message/rfc822"})
        sent.append(pump_literal(writer, reader, size))

    with ctx.client() as client:
        try:
            # no FETCH before the FETCH: a uid the server does not know sends no literal
            _no, uid, _path, reused = open_for_read(ctx, client, message)
            try:
                fetch_streamed(client, uid, "", consume)
            except errors.MessageNotFound:
                if not reused or ctx.writer is not None:
                    raise
                selection.forget(client)   # the reused view may predate the message
                _no, uid, _path = open_message(ctx, client, message)
                fetch_streamed(client, uid, "", consume)
        except errors.NotFound:
            if ctx.writer is not None:
                raise
            raise errors.MessageNotFound(NOT_FOUND) from None
    return {"size": sent[0] if sent else 0}


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


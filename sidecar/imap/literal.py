"""One UID FETCH of a body section whose literal goes to a consumer as it comes off the socket."""
# imaplib reads a literal whole (file.read(size)) before anyone sees a byte: for a 50 MB message
# that is 50 MB in memory. Partial FETCHes instead (one round trip per chunk, Dovecot finding
# the offset again each time) cost the server half as much CPU again as one FETCH and leave the
# pipe idle between chunks. Here imaplib still parses the command's response lines, but its
# literal read is hooked while the command runs: the section's literal goes to
# `consume(size, reader)`, which pulls it in chunks straight into its own buffers (SSL decrypts
# into them; no intermediate bytes objects).
from __future__ import annotations

from imapapi import errors

from . import compat, tlsread

DRAIN_CHUNK = 1024 * 1024
HEAD = 512   # bytes of the literal kept for the protocol log (which cuts at 256)


class LiteralReader:
    """readinto(view) for exactly `size` bytes of one literal."""

    def __init__(self, client, size: int):
        self._file = compat.buffered_reader(client)
        self._bulk = tlsread.BulkReader(compat.raw_socket(client))
        self._buffered: int | None = None   # bytes imaplib's buffer still holds, once looked at
        self.left = size
        self.head = b""
        self.broken = False        # the connection failed under us: it is out of step

    def readinto(self, view: memoryview) -> int:
        """Fill `view` (at most what is left of the literal) -> bytes read. The connection
        ending raises imaplib's abort, a stalled server the socket's timeout."""
        want = min(len(view), self.left)
        if want <= 0:
            return 0
        try:
            got = 0
            if self._buffered is None:   # what imaplib read past the response line
                self._buffered = len(self._file.peek(0))
            if self._buffered:
                got = self._file.readinto(view[:min(self._buffered, want)])
                self._buffered -= got
            # then off the socket itself (tlsread.py), read-ahead only while more than
            # AHEAD_TAIL bytes of the literal follow what it may take in
            split = max(got, min(want, self.left - tlsread.AHEAD_TAIL))
            for end, ahead in ((split, True), (want, False)):
                if got < end:
                    got += self._bulk.fill(view[got:end], ahead)
                    if got < end:
                        raise compat.abort_error("connection closed in the middle of a literal")
        except BaseException:
            self.broken = True
            raise
        if not self.head:
            self.head = bytes(view[:min(got, HEAD)])
        self.left -= got
        return got

    def drain(self) -> None:
        """Read and drop what is left, so the connection stays in step for the next command."""
        scratch = memoryview(bytearray(min(self.left, DRAIN_CHUNK)))
        while self.left:
            self.readinto(scratch)

    def close(self) -> None:
        if not self.broken:
            self._bulk.close()


def fetch_streamed(client, uid: int, section: str, consume) -> int:
    """UID FETCH uid (BODY.PEEK[section]); its literal goes to consume(size, reader) while the
    response is read. -> the literal's size.

    MessageNotFound when the server sends no such literal (the message is gone). An error
    raised by `consume` itself (the API reader gone, Redis down) is raised once the rest of
    the literal was read and dropped and the command completed: the connection stays usable.
    A connection error while reading the literal ends the command as imaplib would."""
    marker = f"BODY[{section}]".encode()
    found: list[int] = []
    failure: list[BaseException] = []

    def read(size: int, inner):
        if found or marker not in compat.literal_response(client):
            return inner(size)
        found.append(size)
        reader = LiteralReader(client, size)
        try:
            consume(size, reader)
        except BaseException as exc:
            if reader.broken:
                raise
            failure.append(exc)
        reader.drain()
        reader.close()
        tap = getattr(inner, "__self__", None)   # sidecar.wiretap.Tap when the log is wired in
        if hasattr(tap, "literal_streamed"):
            tap.literal_streamed(reader.head, size)
        return b""

    with compat.hooked_literal_read(client, read):
        typ, _data = compat.uid_command(client, "FETCH", str(uid), f"(BODY.PEEK[{section}])")
    if failure:
        raise failure[0]
    if typ != "OK" or not found:
        raise errors.MessageNotFound()
    return found[0]

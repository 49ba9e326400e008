"""Bulk reads off an IMAP connection's socket into a caller's buffer: SSL_read with read-ahead, no io layers."""
# Dovecot sends a big literal in TLS records of 4 KiB (imap-login encrypts what it reads from
# the imap process 4 KiB at a time): ~7,000 records for a 28 MB message. Through imaplib's
# BufferedReader every record cost a wake-up of the reading thread (poll() returned as soon as
# one record was in), two recv() syscalls (OpenSSL reads the 5-byte record header, then its
# body) and four Python calls (BufferedReader.readinto, SocketIO.readinto,
# SSLSocket.recv_into, SSLSocket.read): ~70 ms of CPU per 28 MB. Here, for the bulk of a
# literal, SO_RCVLOWAT lets the thread sleep until LOWAT bytes (8 records) are queued,
# OpenSSL's read-ahead (SSL_set_read_ahead, through ctypes: the ssl module has no setter)
# takes in as many records per recv() as its ~17 KiB buffer holds, and the loop calls the SSL
# object's read itself: ~35 ms (bench/source_speed.py). Both are on only while more than
# AHEAD_TAIL bytes of the literal are still to come: read-ahead must never pull in bytes past
# the literal (in OpenSSL's buffer select() no longer sees them: the IDLE wait would sleep on
# a response already received), and the low-water mark must never ask for more bytes than
# the server still owes.
from __future__ import annotations

import ctypes
import logging
import socket
import ssl
import threading
import weakref

log = logging.getLogger(__name__)

SSL_CTRL_SET_READ_AHEAD = 41
AHEAD_TAIL = 64 * 1024
_HEAD = object.__basicsize__
LOWAT = 32 * 1024   # < AHEAD_TAIL - OpenSSL's buffer: that many bytes are always still to come
_lib = None
_lock = threading.Lock()
_warned = threading.Event()


def _libssl():
    """The libssl the _ssl extension itself uses (dlsym through the extension's handle)."""
    global _lib
    with _lock:
        if _lib is None:
            import _ssl
            lib = ctypes.CDLL(_ssl.__file__)
            lib.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                     ctypes.c_void_p]
            lib.SSL_ctrl.restype = ctypes.c_long
            lib.SSL_get_fd.argtypes = [ctypes.c_void_p]
            lib.SSL_get_fd.restype = ctypes.c_int
            _lib = lib
    return _lib


def ssl_pointer(sock: ssl.SSLSocket) -> int | None:
    """The `SSL *` under an SSLSocket, or None when it cannot be confirmed as the right one.

    CPython's PySSLSocket is PyObject_HEAD, then `PyObject *Socket` (a weakref to the socket),
    `SSL *ssl`, `PySSLContext *ctx`: both neighbours are checked from Python before libssl is
    asked whether the SSL object between them reads from this socket's file descriptor."""
    obj = getattr(sock, "_sslobj", None)
    if obj is None or type(obj).__basicsize__ < _HEAD + 24:
        return None
    try:
        ref = ctypes.cast(ctypes.c_void_p.from_address(id(obj) + _HEAD).value, ctypes.py_object)
        if ctypes.c_void_p.from_address(id(obj) + _HEAD + 16).value != id(obj.context):
            return None
        if ref.value is None or type(ref.value) is not weakref.ReferenceType or ref.value() is not sock:
            return None
        ptr = ctypes.c_void_p.from_address(id(obj) + _HEAD + 8).value
        if not ptr or ptr % 8 or _libssl().SSL_get_fd(ptr) != sock.fileno():
            return None
        return ptr
    except (OSError, AttributeError, ValueError, TypeError):   # no such library or symbol
        return None


def set_read_ahead(ptr: int, on: bool) -> None:
    _libssl().SSL_ctrl(ptr, SSL_CTRL_SET_READ_AHEAD, 1 if on else 0, None)


class BulkReader:
    """fill(view, ahead) reads exactly len(view) bytes off the socket; imaplib's own buffer
    must be empty (LiteralReader takes what it holds first)."""

    def __init__(self, sock):
        self._sock = sock
        self._ssl = None
        self._ahead = False
        if isinstance(sock, ssl.SSLSocket):
            self._read = sock._sslobj.read
            self._ssl = ssl_pointer(sock)
            if self._ssl is None and not _warned.is_set():
                _warned.set()
                log.warning("TLS read-ahead is not available (the SSLSocket layout is not the "
                            "one expected): big downloads read one TLS record per recv()")
        else:
            self._read = lambda n, view: sock.recv_into(view, n)

    def fill(self, view: memoryview, ahead: bool) -> int:
        """Read len(view) bytes into view -> that count, or fewer when the peer closed.
        `ahead`: OpenSSL may read past them (the caller knows more bytes of the same kind
        follow: see AHEAD_TAIL)."""
        if ahead != self._ahead:
            self._ahead = ahead
            if self._ssl is not None:
                set_read_ahead(self._ssl, ahead)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOWAT if ahead else 1)
        read, want, got = self._read, len(view), 0
        try:
            while got < want:
                n = read(want - got, view[got:])
                if not n:
                    break
                got += n
        except ssl.SSLEOFError:   # a close without close_notify: SSLSocket.read returns 0
            pass
        return got

    def close(self) -> None:
        """Read-ahead and the low-water mark off again (the connection goes back to line
        reads and select())."""
        if self._ahead:
            self._ahead = False
            if self._ssl is not None:
                set_read_ahead(self._ssl, False)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

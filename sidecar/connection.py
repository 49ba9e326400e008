"""Open and log in IMAP connections (TLS / STARTTLS, shared SSL contexts) and translate errors once."""
from __future__ import annotations

import ast
import errno
import imaplib
import re
import socket
import ssl
import threading

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from imapapi import authserver, errors

from . import wiretap
from .imap import compat, selection

_contexts: dict[tuple, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()
_shared: dict = {}
SHARED_MAX = 256   # distinct capability lists kept (a server could vary them per session)
LOGIN_TIMEOUT = 20.0
_CODE = re.compile(r"^\s*\[([A-Z0-9-]+)[^\]]*\]\s*")


class ConnectFailure(Exception):
    """Connecting or logging in failed; `state` is authenticationError or connectError."""

    def __init__(self, state: str, response: str, code: str | None = None):
        super().__init__(response)
        self.state = state
        self.error = {"response": response, "serverResponseCode": code}


def ssl_context(tls: dict | None) -> ssl.SSLContext:
    """One SSLContext per distinct TLS option set: each default context holds the CA store (memory)."""
    tls = tls or {}
    verify = tls.get("rejectUnauthorized", True) is not False
    min_version = str(tls.get("minVersion") or "")
    key = (verify, min_version)
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = ssl.create_default_context()
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if min_version in ("TLSv1.2", "TLSv1.3"):
                ctx.minimum_version = getattr(ssl.TLSVersion, min_version.replace(".", "_"))
            _contexts[key] = ctx
        return ctx


def shared(value):
    """The process's one copy of an equal immutable value. Every session with a server announces
    the same ~40 capabilities; kept per connection in four forms (imaplib's, imapclient's, the
    session's and the sync engine's) they were ~11 KiB of each idle account's memory."""
    got = _shared.get(value)
    if got is None:
        if len(_shared) >= SHARED_MAX:
            return value
        got = _shared.setdefault(value, value)
    return got


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    text = str(value)
    # imapclient wraps imaplib's bytes messages with str(): "b'[CODE] text'".
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        try:
            return ast.literal_eval(text).decode("utf-8", "replace")
        except (ValueError, SyntaxError, AttributeError):
            pass
    return text


def server_code(message: str) -> tuple[str, str | None]:
    """'[AUTHENTICATIONFAILED] Authentication failed.' -> (text, 'AUTHENTICATIONFAILED')."""
    match = _CODE.match(message)
    if not match:
        return message.strip(), None
    return message.strip(), match.group(1)


def _classify(exc: BaseException) -> ConnectFailure:
    if isinstance(exc, ConnectFailure):
        return exc
    if isinstance(exc, LoginError):
        text, code = server_code(_text(exc.args[0] if exc.args else exc))
        return ConnectFailure("authenticationError", text, code or "AUTHENTICATIONFAILED")
    if isinstance(exc, socket.gaierror):
        return ConnectFailure("connectError", str(exc), "ENOTFOUND")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ConnectFailure("connectError", "Connection timed out", "ETIMEDOUT")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectFailure("connectError", exc.verify_message or str(exc), "CERT_VERIFY_FAILED")
    if isinstance(exc, ssl.SSLError):
        return ConnectFailure("connectError", str(exc), "ETLS")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailure("connectError", "Connection refused", "ECONNREFUSED")
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "ESOCKET")
        return ConnectFailure("connectError", exc.strerror or str(exc), name)
    if isinstance(exc, (IMAPClientError, imaplib.IMAP4.error)):
        text, code = server_code(_text(exc.args[0] if exc.args else exc))
        return ConnectFailure("connectError", text, code)
    return ConnectFailure("connectError", str(exc) or type(exc).__name__, None)


def _keepalive(sock) -> None:
    """TCP keepalive: a server that vanished without a FIN makes the idle socket readable
    (with an error) within about two minutes instead of at the next IDLE refresh."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    except (OSError, AttributeError):
        pass   # not available on this platform: the IDLE refresh still finds dead peers


def connect(imap: dict, timeout: float, *, account: str | None = None,
            redis=None) -> tuple[IMAPClient, frozenset[str]]:
    """Connect, upgrade (STARTTLS when offered), log in -> (client, upper-case capabilities).

    `useAuthServer` accounts fetch their credentials first (needs `account` and `redis`).
    Raises ConnectFailure. Clients use raw (modified UTF-7) folder paths and tz-aware dates."""
    if not isinstance(imap, dict) or not imap.get("host"):
        raise ConnectFailure("connectError", "No IMAP server configured", "ENOCONFIG")
    if authserver.uses_auth_server(imap):
        # Before any socket: without credentials there is nothing to connect for.
        try:
            imap = authserver.resolve(redis, account, "imap", imap, timeout=timeout)
        except authserver.AuthServerError as exc:
            raise ConnectFailure("authenticationError", exc.message, exc.code) from None
    secure = bool(imap.get("secure"))
    port = int(imap.get("port") or (993 if secure else 143))
    ctx = ssl_context(imap.get("tls"))
    auth = imap.get("auth") or {}
    client = None
    try:
        # Servers slow down failed logins per IP (Dovecot: up to 15 s); a short read timeout
        # would report a wrong password as a timeout, so the handshake gets LOGIN_TIMEOUT.
        client = IMAPClient(imap["host"], port=port, ssl=secure, ssl_context=ctx,
                            timeout=compat.SocketTimeout(connect=timeout, read=max(timeout, LOGIN_TIMEOUT)))
        _keepalive(compat.raw_socket(client))
        compat.quiet_imaplib(client)
        # before LOGIN: the protocol log (when on) starts with the redacted login
        wiretap.attach(client, account, redis,
                       f"connected to {imap['host']}:{port}{' (TLS)' if secure else ''}")
        client.folder_encode = False    # paths stay exactly as the server lists them (ids use them)
        client.normalise_times = False  # keep the zone so dates convert to UTC correctly
        caps = client.capabilities()
        if not secure and b"STARTTLS" in caps:
            client.starttls(ctx)
        if auth.get("accessToken"):
            client.oauth2_login(_text(auth.get("user", "")), auth["accessToken"])  # XOAUTH2
        else:
            client.login(_text(auth.get("user", "")), _text(auth.get("pass", "")))
        compat.forget_capabilities(client)   # servers may announce more after login
        compat.share_capabilities(client, shared)
        caps = shared(frozenset(_text(c).upper() for c in client.capabilities()))
        compat.set_read_timeout(client, connect=timeout, read=timeout)
        selection.track(client)         # reads skip re-EXAMINing the selected folder
        return client, caps
    except BaseException as exc:
        if client is not None:
            close_quietly(client, logout=False)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise _classify(exc) from exc


def close_quietly(client, *, logout: bool = True) -> None:
    """LOGOUT (bounded by the socket timeout) then close; never raises."""
    if client is None:
        return
    try:
        if logout:
            client.socket().settimeout(2)
            client.logout()
            return
    except Exception:
        pass
    try:
        client.shutdown()
    except Exception:
        pass


def is_connection_error(exc: BaseException) -> bool:
    """True when the connection itself is broken (it must be dropped and reopened)."""
    return isinstance(exc, (IMAPClientAbortError, imaplib.IMAP4.abort, ConnectionError, EOFError,
                            ssl.SSLError, socket.timeout, TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, socket.gaierror))


def translate(exc: BaseException) -> errors.ApiError | None:
    """Protocol/socket exception -> ApiError (None: not a protocol error, the caller logs it)."""
    if isinstance(exc, errors.ApiError):
        return exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return errors.GatewayTimeout("Timeout waiting for the IMAP server")
    if isinstance(exc, ConnectFailure):
        return errors.Unavailable(exc.error["response"])
    if isinstance(exc, (IMAPClientAbortError, imaplib.IMAP4.abort, ConnectionError, EOFError,
                        ssl.SSLError)) or (isinstance(exc, OSError) and exc.errno is not None):
        return errors.Unavailable("IMAP connection was lost")
    if isinstance(exc, (IMAPClientError, imaplib.IMAP4.error)):
        text, code = server_code(_text(exc.args[0] if exc.args else exc))
        return errors.UpstreamError(text or None, serverResponseCode=code)
    return None

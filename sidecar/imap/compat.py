"""The one place that touches imapclient/imaplib internals or patches them (pinned in pyproject)."""
# Everything the sidecar needs beyond imapclient's public API goes through here: reading imaplib's
# buffered lines during IDLE, raw commands imapclient lacks (NOTIFY, LIST-STATUS, UID FETCH 1:*
# CHANGEDSINCE), untagged response codes imaplib keeps aside, read timeouts, and the FETCH parser
# swap. tests/unit/test_imap_compat.py checks that the installed imapclient is inside the range
# pyproject.toml allows and that every name listed in CLASS_NAMES / INSTANCE_NAMES /
# MODULE_NAMES exists, so an upgrade that renames one fails a unit test, not production.
from __future__ import annotations

import imaplib
import inspect
import logging
from contextlib import contextmanager

import imapclient.imapclient as _imapclient_module
from imapclient import IMAPClient
from imapclient import response_parser as _rp

# -- what we rely on (checked by the unit test; `missing()` lists the absent ones) ---------------
CLASS_NAMES = {
    IMAPClient: ("_set_read_timeout", "_normalise_folder"),
    imaplib.IMAP4: ("_get_line", "_command", "_command_complete", "_untagged_response",
                    "_simple_command", "read", "readline", "send", "noop", "uid"),
}
# Set in the class's methods (`self.<name> = ...`), so only the source shows them.
INSTANCE_NAMES = {
    IMAPClient: ("_imap", "_idle_tag", "_cached_capabilities", "_timeout"),
    imaplib.IMAP4: ("tagged_commands", "untagged_responses", "file", "sock", "state", "debug",
                    "mo", "capabilities"),
}
MODULE_NAMES = {
    _imapclient_module: ("parse_fetch_response", "SocketTimeout"),
    _rp: ("parse_fetch_response", "_convert_ENVELOPE", "_convert_INTERNALDATE"),
    imaplib: ("Commands",),
}


def missing() -> list[str]:
    """Names this module uses that the installed imapclient/imaplib lack (empty when all fine)."""
    out = []
    for owner, names in CLASS_NAMES.items():
        out += [f"{owner.__name__}.{n}" for n in names if not hasattr(owner, n)]
    for owner, names in INSTANCE_NAMES.items():
        source = inspect.getsource(owner)
        out += [f"{owner.__name__}().{n}" for n in names if f"self.{n} =" not in source]
    for owner, names in MODULE_NAMES.items():
        out += [f"{owner.__name__}.{n}" for n in names if not hasattr(owner, n)]
    return out


# -- library patches ---------------------------------------------------------------------------
# imaplib refuses commands it does not know; NOTIFY is valid once authenticated (RFC 5465).
# Done on import: every module that sends NOTIFY reaches it through this one.
imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))

SocketTimeout = _imapclient_module.SocketTimeout
# imapclient's own parser and typed converters (fetchparse keeps their exact result types).
stock_parse_fetch_response = _rp.parse_fetch_response
convert_envelope = getattr(_rp, "_convert_ENVELOPE", None)
convert_internaldate = getattr(_rp, "_convert_INTERNALDATE", None)


def install_fetch_parser(parse) -> bool:
    """Make IMAPClient.fetch in this process parse with `parse` (same contract as imapclient's
    parse_fetch_response). Only where this imapclient has the names the parser relies on."""
    if (hasattr(_imapclient_module, "parse_fetch_response")
            and all(hasattr(_rp, n) for n in ("_convert_ENVELOPE", "_convert_INTERNALDATE"))):
        _imapclient_module.parse_fetch_response = parse
        return True
    return False


# -- connection setup --------------------------------------------------------------------------
def quiet_imaplib(client) -> None:
    """Undo imapclient's `_imap.debug = 5` unless its imaplib logger would print the messages.

    At level 5 imaplib formats `%r` of every response it stores and hands back, literals
    included, for a logger that then drops it: a repr of each message body a FETCH returns,
    twice (57 % of the sidecar's CPU while it streams a 28 MB message, and part of every
    details/text read). The level is read at connect: turning that logger to DEBUG later
    shows the messages of connections made after it."""
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def raw_socket(client):
    """The socket imaplib reads from (client.socket() is the same object, but may be wrapped)."""
    return client._imap.sock


def forget_capabilities(client) -> None:
    """Servers may announce more after login; imapclient caches only the pre-auth list."""
    client._cached_capabilities = None


def share_capabilities(client, shared) -> None:
    """Fetch the capabilities and keep imapclient's and imaplib's lists as `shared(tuple)`
    (one copy per process instead of one per connection: sidecar.connection.shared)."""
    client._cached_capabilities = shared(tuple(client.capabilities()))
    client._imap.capabilities = shared(tuple(client._imap.capabilities))


def set_read_timeout(client, connect: float, read: float) -> None:
    client._timeout = SocketTimeout(connect=connect, read=read)
    client._set_read_timeout()


def restore_read_timeout(client) -> None:
    """Back to the client's configured (blocking, timed) read timeout."""
    client._set_read_timeout()


def wrap_io(client, send, readline, read) -> tuple:
    """Route imaplib's socket I/O through the given callables (sidecar.wiretap): every write
    (commands, literals, DONE) goes through send(data), every line read through readline(),
    every literal read through read(size). -> imaplib's own (send, readline, read) to call on.
    Instance attributes, so imaplib's internal self.readline()/self.send() calls see them."""
    imap = client._imap
    originals = (imap.send, imap.readline, imap.read)
    imap.send, imap.readline, imap.read = send, readline, read
    return originals


# -- reading imaplib's stream directly (IDLE) --------------------------------------------------
def buffered_reader(client):
    """imaplib's BufferedReader over the socket, or None."""
    return getattr(client._imap, "file", None)


def line_reader(client) -> tuple:
    """-> (get_line, read(n)) reading through imaplib's own buffer."""
    imap = client._imap
    return imap._get_line, imap.read


def idle_tag(client) -> bytes:
    return client._idle_tag


def set_idle_tag(client, tag: bytes) -> None:
    """IDLE started by sidecar.idle.start_idle: imapclient's idle_check/idle_done need the tag."""
    client._idle_tag = tag


def begin(client, *args) -> bytes:
    """Send a command without reading its answer -> its tag (the caller reads the answer)."""
    return client._imap._command(*args)


def send_raw(client, data: bytes) -> None:
    client._imap.send(data)


def forget_tag(client, tag: bytes) -> None:
    """The tagged answer was read by us, not imaplib: drop its pending-command entry."""
    client._imap.tagged_commands.pop(tag, None)


# -- raw commands ------------------------------------------------------------------------------
def command(client, answer: str, *args) -> tuple:
    """Send `args`, wait for the tagged answer -> (typ, the untagged `answer` data), or (typ, the
    tagged data) when typ is not OK. For answers imapclient drops or cannot ask for
    (UID FETCH 1:* ... VANISHED, LIST ... RETURN (STATUS ...))."""
    imap = client._imap
    tag = imap._command(*args)
    typ, data = imap._command_complete(answer, tag)
    if typ != "OK":
        return typ, data
    return imap._untagged_response(typ, data, answer)


def simple_command(client, name: str, *args) -> tuple:
    """imaplib's `_simple_command`: (typ, data) with the tagged response text (COPYUID...)."""
    return client._imap._simple_command(name, *args)


def untagged(client) -> dict:
    """imaplib's untagged responses kept aside ({name: [data...]}); pop what you consume."""
    return client._imap.untagged_responses


def is_selected(client) -> bool:
    return client._imap.state == "SELECTED"


def imaplib_noop(client) -> None:
    """imaplib's NOOP (imapclient's cannot parse NOTIFY events carrying literals)."""
    client._imap.noop()


def normalise_folder(client, name) -> bytes:
    """A folder name as imapclient sends it in commands (quoting, encoding per folder_encode)."""
    return client._normalise_folder(name)


# -- streaming one literal (sidecar/imap/literal.py) --------------------------------------------
def literal_response(client) -> bytes:
    """While imaplib reads a literal: the response text before it (`* 3 FETCH (... BODY[] {n}`),
    the string its last regex match ran on."""
    match = getattr(client._imap, "mo", None)
    return match.string if match is not None and isinstance(match.string, bytes) else b""


@contextmanager
def hooked_literal_read(client, hook):
    """imaplib's literal reads call hook(size, inner) while the block runs; `inner` is the read
    they would have called (imaplib's, or the protocol tap's wrapper over it)."""
    imap = client._imap
    own = "read" in vars(imap)
    inner = imap.read
    imap.read = lambda size: hook(size, inner)
    try:
        yield
    finally:
        if own:
            imap.read = inner
        else:
            del imap.read


def uid_command(client, name: str, *args) -> tuple:
    """imaplib's UID command: (typ, the untagged `name` data), literals read through `read`."""
    return client._imap.uid(name, *args)


def abort_error(message: str) -> Exception:
    return imaplib.IMAP4.abort(message)

"""Outbound URL safety (webhooks, auth server): refuse link-local and cloud metadata addresses.

The check runs on the address a connection is actually opened to (inside the urllib3
connection, after DNS resolution), so a name that resolves to a harmless address when saved and
to 169.254.169.254 later (DNS rebinding) is still refused. Private and loopback targets are
allowed unless the operator denies them: self-hosted receivers usually live there.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

# Always refused, whatever the settings: instance metadata services and link-local networks.
ALWAYS_DENIED = [ipaddress.ip_network(n) for n in (
    "169.254.0.0/16",          # IPv4 link-local; AWS/GCP/Azure/OCI metadata at 169.254.169.254
    "fe80::/10",               # IPv6 link-local
    "fd00:ec2::254/128",       # AWS metadata over IPv6
    "100.100.100.200/32",      # Alibaba Cloud metadata
    "0.0.0.0/8",               # "this host": connecting to 0.0.0.0 reaches local services
    "::/128",
    "224.0.0.0/4", "ff00::/8",  # multicast
    "255.255.255.255/32",
)]


class UnsafeURL(requests.exceptions.InvalidURL):
    """The URL or the address it resolved to is not an allowed target (message names the
    address, never credentials)."""


class _Refused(ValueError):
    # Raised inside urllib3, which would swallow an OSError (requests' exceptions are OSErrors)
    # into a retry or a "connection aborted"; SafeAdapter.send turns it into UnsafeURL.
    pass


def _unwrap(ip: ipaddress._BaseAddress) -> ipaddress._BaseAddress:
    # ::ffff:169.254.169.254 and NAT64-free embeddings reach the IPv4 address: judge that one.
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def address_problem(address: str, *, allow_private: bool = True) -> str | None:
    """Why this IP may not be contacted, or None when it may. Pure."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    for candidate in {ip, _unwrap(ip)}:
        for net in ALWAYS_DENIED:
            if candidate.version == net.version and candidate in net:
                return f"{candidate} is a link-local, metadata or reserved address"
        if not allow_private and not candidate.is_global:
            return f"{candidate} is a private or loopback address (denied by outbound.allowPrivate=false)"
    return None


def url_problem(url: str, *, allow_private: bool = True) -> str | None:
    """Static check of a URL (scheme, host, IP literals) for saving it; names are checked when
    connecting. Pure."""
    try:
        parts = urlsplit(url)
        _ = parts.port   # raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    host = parts.hostname
    if not host:
        return "URL has no host"
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return address_problem(host, allow_private=allow_private)


def _safe_connect(conn, allow_private: bool):
    """Resolve, check every address, connect only to a checked one (no second lookup)."""
    host = conn._dns_host
    if host.startswith("["):
        host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, conn.port, allowed_gai_family(), socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    err = None
    refused = None
    for af, socktype, proto, _, sockaddr in infos:
        problem = address_problem(sockaddr[0], allow_private=allow_private)
        if problem:
            refused = problem
            continue
        sock = socket.socket(af, socktype, proto)
        try:
            for opt in conn.socket_options or ():
                sock.setsockopt(*opt)
            if isinstance(conn.timeout, (int, float)):   # else urllib3's "default" sentinel
                sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            return sock
        except socket.timeout as exc:
            sock.close()
            err = ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. "
                                            f"(connect timeout={conn.timeout})")
            err.__cause__ = exc
        except OSError as exc:
            sock.close()
            err = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
    if err is not None:
        raise err
    raise _Refused(f"refused target {conn.host}: {refused or 'no address'}")


def _quick_ack(conn) -> None:
    # A receiver that writes the status line/headers and the body in two sends (Python's
    # http.server does) has its second send held by Nagle until our ACK of the first, and
    # Linux delays that ACK by up to 40 ms: 40 ms per POST, a 25/s ceiling for one account's
    # in-order webhooks. Quick-ack mode is not sticky, so it is asked for before every answer.
    sock = getattr(conn, "sock", None)
    if sock is not None and _QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)   # Linux only


class _Checked:
    """For urllib3's connection classes: the target check at connect time, quick ACKs."""
    allow_private = True

    def _new_conn(self):
        return _safe_connect(self, self.allow_private)

    def getresponse(self, *args, **kwargs):
        _quick_ack(self)
        return super().getresponse(*args, **kwargs)


class _SafeHTTPConnection(_Checked, HTTPConnection):
    pass


class _SafeHTTPSConnection(_Checked, HTTPSConnection):
    pass


class SafeAdapter(HTTPAdapter):
    """A requests adapter whose connections check the resolved address before connecting."""

    def __init__(self, *, allow_private: bool = True, **kwargs):
        attrs = {"allow_private": allow_private}
        http_conn = type("SafeHTTPConnection", (_SafeHTTPConnection,), attrs)
        https_conn = type("SafeHTTPSConnection", (_SafeHTTPSConnection,), attrs)
        self._pools = {
            "http": type("SafeHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("SafeHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
        super().__init__(max_retries=0, **kwargs)

    def send(self, request, *args, **kwargs):
        try:
            return super().send(request, *args, **kwargs)
        except _Refused as exc:
            raise UnsafeURL(str(exc), request=request) from None

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._pools)


class _NoRedirectSession(requests.Session):
    def get_redirect_target(self, resp):
        return None   # a 3xx is the answer: never follow it to a target nobody checked


def session(*, allow_private: bool = True) -> requests.Session:
    """A Session for outbound calls: checked connections, no proxies from the environment
    (a proxy would make the check meaningless), redirects never followed."""
    s = _NoRedirectSession()
    s.trust_env = False
    adapter = SafeAdapter(allow_private=allow_private)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s

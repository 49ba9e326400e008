"""Outbound URL safety: address table, URL pre-check, and the connect-time check (loopback only)."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from imapapi import urlsafety


@pytest.mark.parametrize("address,allow_private,refused", [
    ("169.254.169.254", True, True),
    ("169.254.0.1", True, True),
    ("fe80::1", True, True),
    ("fe80::1%eth0", True, True),
    ("fd00:ec2::254", True, True),
    ("::ffff:169.254.169.254", True, True),   # IPv4-mapped form of the metadata address
    ("100.100.100.200", True, True),
    ("0.0.0.0", True, True),
    ("::", True, True),
    ("224.0.0.1", True, True),
    ("127.0.0.1", True, False),
    ("::1", True, False),
    ("10.1.2.3", True, False),
    ("192.168.1.10", True, False),
    ("fd12:3456::1", True, False),
    ("127.0.0.1", False, True),
    ("::1", False, True),
    ("10.1.2.3", False, True),
    ("172.16.0.1", False, True),
    ("::ffff:10.0.0.1", False, True),
    ("93.184.216.34", False, False),
    ("2606:4700::1111", False, False),
    ("not-an-ip", True, True),
])
def test_address_table(address, allow_private, refused):
    assert (urlsafety.address_problem(address, allow_private=allow_private) is not None) is refused


@pytest.mark.parametrize("url,refused", [
    ("http://127.0.0.1:8080/hook", False),
    ("https://hooks.example.com/x", False),      # names are judged when connecting
    ("http://169.254.169.254/latest/meta-data/", True),
    ("http://[fd00:ec2::254]/", True),
    ("http://[fe80::1]:80/", True),
    ("ftp://127.0.0.1/", True),
    ("file:///etc/passwd", True),
    ("http:///nohost", True),
    ("http://127.0.0.1:99999/", True),
])
def test_url_problem(url, refused):
    assert (urlsafety.url_problem(url) is not None) is refused


@pytest.fixture
def receiver():
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            else:
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()


def test_loopback_allowed_by_default(receiver):
    base, hits = receiver
    resp = urlsafety.session().post(base + "/hook", data=b"{}", timeout=5)
    assert resp.status_code == 204 and hits == ["/hook"]


def test_private_denied_by_setting(receiver):
    base, hits = receiver
    with pytest.raises(urlsafety.UnsafeURL, match="private or loopback"):
        urlsafety.session(allow_private=False).post(base + "/hook", data=b"{}", timeout=5)
    assert hits == []
    # an existing handler for requests errors also catches it
    assert issubclass(urlsafety.UnsafeURL, requests.RequestException)


def test_redirects_not_followed(receiver):
    base, hits = receiver
    resp = urlsafety.session().post(base + "/redirect", data=b"{}", timeout=5)
    assert resp.status_code == 302 and hits == ["/redirect"]


def test_resolved_address_is_checked_at_connect_time(receiver, monkeypatch):
    """DNS rebinding: the name passed the save-time check (it is a name), then resolves to the
    metadata address when the connection is opened: refused, nothing contacted."""
    base, hits = receiver
    port = int(base.rsplit(":", 1)[1])
    answers = {"rebind.test": ("169.254.169.254", port)}
    real = socket.getaddrinfo

    def resolver(host, port_, *args, **kwargs):
        if host in answers:
            ip, p = answers[host]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, p))]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(urlsafety.socket, "getaddrinfo", resolver)
    assert urlsafety.url_problem(f"http://rebind.test:{port}/hook") is None
    with pytest.raises(urlsafety.UnsafeURL, match="169.254.169.254"):
        urlsafety.session().post(f"http://rebind.test:{port}/hook", data=b"{}", timeout=5)
    answers["rebind.test"] = ("127.0.0.1", port)                 # same name, harmless answer
    assert urlsafety.session().post(f"http://rebind.test:{port}/hook", timeout=5).status_code == 204
    assert hits == ["/hook"]


def test_connect_errors_stay_requests_errors():
    # a closed loopback port: a normal ConnectionError, not UnsafeURL
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(requests.ConnectionError):
        urlsafety.session().post(f"http://127.0.0.1:{port}/", timeout=2)

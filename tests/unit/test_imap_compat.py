"""The imapclient internals sidecar/imap/compat.py relies on exist in the pinned, installed version."""
from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from sidecar.imap import compat

ROOT = Path(__file__).resolve().parents[2]


def _pinned() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        req = Requirement(dep)
        if req.name.lower() == "imapclient":
            return req
    raise AssertionError("imapclient is not a dependency in pyproject.toml")


def test_pyproject_pins_an_upper_bound():
    # compat.py reaches into private names: a new major version must be a deliberate upgrade
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in _pinned().specifier)


def test_installed_imapclient_is_inside_the_pinned_range():
    installed = metadata.version("imapclient")
    assert _pinned().specifier.contains(installed, prereleases=True), installed


def test_every_private_name_compat_uses_exists():
    assert compat.missing() == []


def test_missing_reports_an_absent_name(monkeypatch):
    monkeypatch.delattr(compat.IMAPClient, "_set_read_timeout")
    assert "IMAPClient._set_read_timeout" in compat.missing()


def test_notify_is_a_known_imaplib_command():
    import imaplib

    assert imaplib.Commands["NOTIFY"] == ("AUTH", "SELECTED")


def test_imaplib_stops_formatting_messages_nobody_logs():
    import logging
    import types

    # what imapclient leaves on every connection: level 5, each response repr'd for its logger
    client = types.SimpleNamespace(_imap=types.SimpleNamespace(debug=5))
    logger = logging.getLogger("imapclient.imaplib")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        compat.quiet_imaplib(client)
        assert client._imap.debug == 0
        client._imap.debug = 5
        logger.setLevel(logging.DEBUG)
        compat.quiet_imaplib(client)
        assert client._imap.debug == 5   # someone asked for imaplib's lines: keep them
    finally:
        logger.setLevel(before)

"""Small helpers shared by integration tests: build RFC 5322 messages, read flags directly."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime


def message(subject: str, *, sender="Alice <alice@example.com>", to="Bob <bob@example.com>",
            when: datetime | None = None, msgid: str | None = None, body="Hello",
            cc: str | None = None, in_reply_to: str | None = None) -> bytes:
    """Raw message bytes; header values are used as given (pass RFC 2047 words to test decoding)."""
    when = when or datetime.now(timezone.utc)
    lines = [f"From: {sender}", f"To: {to}"] + ([f"Cc: {cc}"] if cc else []) + [
        f"Subject: {subject}", f"Date: {format_datetime(when)}",
        f"Message-ID: {msgid or f'<{time.time_ns()}@test.example>'}"]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode("utf-8")


def flags_of(acc, folder: str, uid: int) -> set:
    """The message's flags as Dovecot has them (a direct connection; \\Recent left out)."""
    conn = acc.imap()
    try:
        conn.select_folder(folder, readonly=True)
        return set(conn.get_flags([uid]).get(uid, ())) - {b"\\Recent"}
    finally:
        conn.logout()

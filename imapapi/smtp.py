"""Deliver one raw message over SMTP (smtplib): implicit TLS, STARTTLS or plain; failures classified."""
from __future__ import annotations

import functools
import re
import smtplib
import socket
import ssl

from .authserver import xoauth2

DEFAULT_TIMEOUT = 30.0   # per socket operation; a stuck server must not hold a worker forever
# RFC 5321 4.5.3.2.6 asks clients to wait 10 min for the reply to the final dot: a timeout there is
# ambiguous (the server may have taken the message) and the retry would deliver it twice. Kept
# under the worker's 300 s soft time limit so the attempt still ends as a deferral.
DATA_DONE_TIMEOUT = 240.0


class SMTPFailure(Exception):
    """A delivery attempt failed; `transient` says whether trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool, code: int | str | None = None):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.code = code

    def to_dict(self) -> dict:
        return {"message": self.message, "transient": self.transient, "code": self.code}


@functools.lru_cache(maxsize=1)
def ehlo_name() -> str:
    """This host's name for EHLO, looked up once: getfqdn() may wait on reverse DNS."""
    name = socket.getfqdn()
    # RFC 5321 wants a domain or an address literal; a bare host name is often refused.
    return name if "." in name else "[127.0.0.1]"


def tls_context(config: dict) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if (config.get("tls") or {}).get("rejectUnauthorized") is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _text(resp) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def _classify_code(code: int, text: str, stage: str) -> SMTPFailure:
    # 4xx means "try again later" by RFC 5321; 5xx (and anything odd) is final.
    transient = 400 <= code < 500
    return SMTPFailure(f"{stage}: {code} {text}".strip(), transient=transient, code=code)


def connect(config: dict, timeout: float = DEFAULT_TIMEOUT) -> smtplib.SMTP:
    """An SMTP session, TLS as configured, greeted and authenticated."""
    host = config.get("host") or "127.0.0.1"
    secure = bool(config.get("secure"))
    port = int(config.get("port") or (465 if secure else 587))
    local_hostname = config.get("name") or ehlo_name()
    ctx = tls_context(config)
    if secure:
        client = smtplib.SMTP_SSL(host, port, local_hostname=local_hostname, timeout=timeout,
                                  context=ctx)
    else:
        client = smtplib.SMTP(host, port, local_hostname=local_hostname, timeout=timeout)
    try:
        client.ehlo_or_helo_if_needed()
        if not secure and not config.get("ignoreTLS"):
            if client.has_extn("starttls"):
                client.starttls(context=ctx)
                client.ehlo()
            elif config.get("requireTLS"):
                raise SMTPFailure("Server does not offer STARTTLS but requireTLS is set",
                                  transient=False)
        auth = config.get("auth") or {}
        if auth.get("user"):
            _login(client, auth)
    except BaseException:
        _close(client)
        raise
    return client


def _login(client: smtplib.SMTP, auth: dict) -> None:
    if not client.has_extn("auth"):
        raise SMTPFailure("Server does not offer AUTH", transient=False)
    offered = client.esmtp_features.get("auth", "").upper().split()
    if auth.get("accessToken"):
        if "XOAUTH2" not in offered:
            raise SMTPFailure(f"Server does not offer AUTH XOAUTH2 (offers {' '.join(offered)})",
                              transient=False)
        code, resp = client.auth("XOAUTH2", xoauth2_response(auth["user"], auth["accessToken"]),
                                 initial_response_ok=True)
        if code not in (235, 503):
            raise _classify_code(code, _text(resp), "AUTH")
        return
    client.user, client.password = auth["user"], auth.get("pass") or ""
    # Only PLAIN and LOGIN: CRAM-MD5 needs the password stored in clear on the server anyway.
    for mech, fn in (("PLAIN", client.auth_plain), ("LOGIN", client.auth_login)):
        if mech in offered:
            code, resp = client.auth(mech, fn, initial_response_ok=True)
            if code not in (235, 503):
                raise _classify_code(code, _text(resp), "AUTH")
            return
    raise SMTPFailure(f"No supported AUTH mechanism (server offers {' '.join(offered)})",
                      transient=False)


def xoauth2_response(user: str, token: str):
    """smtplib auth object: the XOAUTH2 string first; an empty line answers the server's error
    challenge (334 with a JSON status), after which it sends the final failure reply."""
    def respond(challenge=None) -> str:
        return "" if challenge is not None else xoauth2(user, token)
    return respond


def _close(client) -> None:
    try:
        client.quit()
    except Exception:
        try:
            client.close()
        except Exception:
            pass


def send(config: dict, mail_from: str, rcpt_to: list[str], raw: bytes,
         timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Deliver; -> {"response": last SMTP reply line, "accepted": [...], "rejected": {...}}.

    Raises SMTPFailure: connection problems and 4xx are transient, 5xx permanent.
    """
    try:
        client = connect(config, timeout)
    except SMTPFailure:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise _classify_code(exc.smtp_code, _text(exc.smtp_error), "Invalid login") from None
    except smtplib.SMTPResponseException as exc:
        raise _classify_code(exc.smtp_code, _text(exc.smtp_error), "Connect") from None
    except ssl.SSLCertVerificationError as exc:
        # Misconfiguration, not a passing outage: retrying can not help.
        raise SMTPFailure(f"TLS certificate rejected: {exc.verify_message}", transient=False) from None
    except (OSError, smtplib.SMTPException, socket.timeout) as exc:
        raise SMTPFailure(f"Connection failed: {exc}", transient=True) from None
    try:
        return _transaction(client, mail_from, rcpt_to, raw)
    except SMTPFailure:
        raise
    except smtplib.SMTPResponseException as exc:
        raise _classify_code(exc.smtp_code, _text(exc.smtp_error), "SMTP") from None
    except (OSError, smtplib.SMTPException, socket.timeout) as exc:
        # Dropped mid-transaction: the server did not confirm DATA, so it did not take the mail.
        raise SMTPFailure(f"Connection lost: {exc}", transient=True) from None
    finally:
        _close(client)


def _transaction(client: smtplib.SMTP, mail_from: str, rcpt_to: list[str], raw: bytes) -> dict:
    options = []
    if not (mail_from + "".join(rcpt_to)).isascii():
        if not client.has_extn("smtputf8"):
            raise SMTPFailure("Non-ASCII address but the server does not support SMTPUTF8",
                              transient=False)
        options.append("SMTPUTF8")
    if client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    code, resp = client.mail(mail_from, options)
    if code != 250:
        raise _classify_code(code, _text(resp), "MAIL FROM")
    accepted, rejected = [], {}
    for rcpt in rcpt_to:
        code, resp = client.rcpt(rcpt)
        if code in (250, 251):
            accepted.append(rcpt)
        else:
            rejected[rcpt] = (code, _text(resp))
    if not accepted:
        client.rset()
        # Any 4xx means one of them may work later; all-5xx is final.
        codes = [c for c, _ in rejected.values()]
        worst = min(codes) if any(400 <= c < 500 for c in codes) else max(codes)
        detail = "; ".join(f"{r}: {c} {t}" for r, (c, t) in rejected.items())
        raise SMTPFailure(f"All recipients were rejected: {detail}",
                          transient=400 <= worst < 500, code=worst)
    code, resp = _data(client, raw)
    if code != 250:
        raise _classify_code(code, _text(resp), "DATA")
    return {"response": f"{code} {_text(resp)}", "accepted": accepted,
            "rejected": {r: f"{c} {t}" for r, (c, t) in rejected.items()}}


def _data(client: smtplib.SMTP, raw: bytes) -> tuple[int, bytes]:
    """smtplib's data(), but the reply to the final dot gets DATA_DONE_TIMEOUT (see above)."""
    code, resp = client.docmd("DATA")
    if code != 354:
        raise smtplib.SMTPDataError(code, resp)
    payload = re.sub(rb"(?m)^\.", b"..", raw)   # dot-stuffing (RFC 5321 4.5.2)
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    client.send(payload + b".\r\n")
    client.sock.settimeout(max(client.timeout or 0, DATA_DONE_TIMEOUT))
    try:
        return client.getreply()
    finally:
        if client.sock is not None:   # getreply() closes the client when the read fails
            client.sock.settimeout(client.timeout)

"""Slow, stalled and cut IMAP/SMTP servers (a fault proxy before the real ones): gateway errors, no hangs."""
from __future__ import annotations

import concurrent.futures
import time

import pytest
import requests

from tests.fixtures.services import STACK_ENV
from tests.checks import assert_error, wait_until
from tests.integration.helpers import message

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT = float(STACK_ENV["COMMAND_TIMEOUT"].rstrip("s"))
MARGIN = 3.0   # queue hops and a loaded machine on top of the command timeout


def listing(api, acc, timeout: float = 30.0):
    return api.get(f"/v1/account/{acc.id}/messages", params={"path": "INBOX"}, timeout=timeout)


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


@pytest.fixture
def imap_proxy(faultproxy, dovecot):
    return faultproxy(dovecot.port)


@pytest.fixture
def proxied(new_account, imap_proxy):
    """A connected account whose IMAP traffic goes through the proxy (plain port + STARTTLS)."""
    acc = new_account(imap={"port": imap_proxy.port})
    acc.append(message("through the proxy"))
    return acc


# -- IMAP ------------------------------------------------------------------------------------------
def test_server_that_never_greets_is_connect_error_with_timeout_and_503(api, stack, new_account,
                                                                       imap_proxy):
    imap_proxy.stall()
    acc = new_account(imap={"port": imap_proxy.port}, wait="connectError")
    error = acc.state["lastError"]
    assert "timed out" in error["response"].lower() and error["serverResponseCode"] == "ETIMEDOUT", error

    resp, took = timed(listing, api, acc)
    body = assert_error(resp, 503, "NotConnected")
    assert body["state"] == "connectError" and took < 2.0, (body, took)

    # Retried with backoff (not in a tight loop), then connected once the server answers.
    first = imap_proxy.accepted
    wait_until(lambda: imap_proxy.accepted > first, 20, "a reconnect attempt")
    assert imap_proxy.accepted <= first + 3, imap_proxy.accepted
    imap_proxy.passthrough()
    stack.wait_state(acc.id, "connected", timeout=30)
    assert listing(api, acc).status_code == 200


def test_stall_mid_listing_is_504_then_reconnects_and_serves_again(api, stack, proxied, imap_proxy):
    assert listing(api, proxied).status_code == 200
    before = imap_proxy.accepted
    imap_proxy.stall()
    resp, took = timed(listing, api, proxied)
    assert_error(resp, 504, "Timeout")
    assert took < COMMAND_TIMEOUT + MARGIN, took

    # The timed-out connection was dropped: while the server stays stalled the account is not
    # connected and requests fail fast with 503 instead of each waiting out a timeout.
    for _ in range(2):
        resp, took = timed(listing, api, proxied)
        body = assert_error(resp, 503, "NotConnected")
        assert body["state"] in ("disconnected", "connecting", "connectError"), body
        assert took < 2.0, took

    imap_proxy.passthrough()
    # A fresh connection (the stalled one is not reused) and the account works again.
    wait_until(lambda: imap_proxy.accepted > before, 30, "a new IMAP connection")
    stack.wait_state(proxied.id, "connected", timeout=30)
    ok = wait_until(lambda: listing(api, proxied).status_code == 200, 20, "listing 200 again")
    assert ok
    subjects = [m["subject"] for m in listing(api, proxied).json()["messages"]]
    assert "through the proxy" in subjects


def test_concurrent_requests_during_a_stall_all_get_gateway_errors(api, stack, proxied, imap_proxy):
    imap_proxy.stall()
    paths = [f"/v1/account/{proxied.id}/messages?path=INBOX",
             f"/v1/account/{proxied.id}/mailboxes"] * 3
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        results = list(pool.map(lambda p: timed(api.get, p), paths))
    for resp, took in results:
        assert resp.status_code in (503, 504), resp.text
        assert_error(resp, resp.status_code)
        assert took < COMMAND_TIMEOUT + MARGIN, took
    imap_proxy.passthrough()
    stack.wait_state(proxied.id, "connected", timeout=30)
    wait_until(lambda: listing(api, proxied).status_code == 200, 20, "listing 200 again")
    mailboxes = api.get(f"/v1/account/{proxied.id}/mailboxes")
    assert mailboxes.status_code == 200, mailboxes.text


def test_stalled_account_does_not_hold_up_other_accounts(api, new_account, proxied, imap_proxy):
    other = new_account()
    imap_proxy.stall()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        stalled = [pool.submit(timed, listing, api, proxied) for _ in range(8)]
        time.sleep(0.3)
        resp, took = timed(listing, api, other)
        for future in stalled:
            assert future.result()[0].status_code in (503, 504)
    assert resp.status_code == 200 and took < 2.0, (resp.status_code, took)


def test_connection_reset_reconnects(api, stack, proxied, imap_proxy):
    imap_proxy.close()
    stack.wait_state(proxied.id, ("disconnected", "connectError"), timeout=15)
    resp, took = timed(listing, api, proxied)
    assert_error(resp, 503, "NotConnected")
    assert took < 2.0, took
    imap_proxy.passthrough()
    stack.wait_state(proxied.id, "connected", timeout=30)
    assert listing(api, proxied).status_code == 200


def test_slow_server_still_answers(api, stack, proxied, imap_proxy):
    fast, fast_took = timed(listing, api, proxied)
    assert fast.status_code == 200
    imap_proxy.delay(150)   # every chunk, both directions
    slow, slow_took = timed(listing, api, proxied)
    assert slow.status_code == 200, slow.text
    assert slow.json()["messages"] == fast.json()["messages"]
    assert slow_took > fast_took and slow_took >= 0.3, (fast_took, slow_took)
    mailboxes = api.get(f"/v1/account/{proxied.id}/mailboxes")
    assert mailboxes.status_code == 200, mailboxes.text
    assert stack.get_account(proxied.id).json()["state"] == "connected"


# -- SMTP ------------------------------------------------------------------------------------------
def outbox_state(api, queue_id: str, states, timeout: float) -> dict:
    return wait_until(lambda: (lambda b: b if b.get("state") in states else None)(
        api.get(f"/v1/outbox/{queue_id}").json()), timeout, f"outbox {queue_id} in {states}")


def test_smtp_stall_during_submit_is_deferred_then_delivered_once(api, new_account, smtp,
                                                                   faultproxy):
    proxy = faultproxy(smtp.port)
    acc = new_account(smtp={**smtp.account_config(), "port": proxy.port})
    proxy.stall()
    resp, took = timed(api.post, f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "subject": "stalled", "text": "hi"})
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    assert queued["queueId"] and queued["messageId"], queued
    assert took < COMMAND_TIMEOUT + MARGIN, took

    # The stalled attempt times out (transient) and is deferred, not lost.
    item = outbox_state(api, queued["queueId"], ("deferred",), 60)
    assert item["lastError"]["transient"] is True, item
    assert smtp.attempts == 0 and smtp.received == []

    proxy.passthrough()
    item = outbox_state(api, queued["queueId"], ("sent", "failed"), 60)
    assert item["state"] == "sent", item
    time.sleep(1)
    got = [r for r in smtp.received if r.message()["Message-ID"] == queued["messageId"]]
    assert len(got) == 1 and len(smtp.received) == 1, smtp.received


def big_message(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123\r\n"
    return message("big download") + line * (size // len(line))


def test_stall_before_download_is_504_json(api, proxied, imap_proxy):
    first = listing(api, proxied).json()["messages"][0]
    imap_proxy.stall()
    resp, took = timed(api.get, f"/v1/account/{proxied.id}/message/{first['id']}/source")
    assert_error(resp, 504, "Timeout")
    assert took < COMMAND_TIMEOUT + MARGIN, took


def test_stall_mid_download_cuts_the_body_short_without_hanging(api, stack, proxied, imap_proxy):
    raw = big_message(24 * 1024 * 1024)
    proxied.append(raw)
    entry = wait_until(lambda: next((m for m in listing(api, proxied).json()["messages"]
                                     if m["subject"] == "big download"), None), 15, "big message")
    start = time.monotonic()
    got = 0
    with api.get(f"/v1/account/{proxied.id}/message/{entry['id']}/source", stream=True) as resp:
        assert resp.status_code == 200
        chunks = resp.iter_content(256 * 1024)
        got += len(next(chunks))
        imap_proxy.stall()
        with pytest.raises(requests.exceptions.RequestException):
            for chunk in chunks:
                got += len(chunk)
    assert got < len(raw), got
    assert time.monotonic() - start < 3 * COMMAND_TIMEOUT + MARGIN
    imap_proxy.passthrough()
    stack.wait_state(proxied.id, "connected", timeout=30)
    wait_until(lambda: listing(api, proxied).status_code == 200, 20, "listing 200 again")


def test_imap_drop_mid_download_cuts_the_body_short_without_a_500(api, stack, proxied,
                                                                  imap_proxy):
    raw = big_message(24 * 1024 * 1024)
    proxied.append(raw)
    entry = wait_until(lambda: next((m for m in listing(api, proxied).json()["messages"]
                                     if m["subject"] == "big download"), None), 15, "big message")
    api_log = stack.log_dir / "api.log"
    mark = api_log.stat().st_size
    with api.get(f"/v1/account/{proxied.id}/message/{entry['id']}/source", stream=True) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Length"] == str(len(raw))
        chunks = resp.iter_content(256 * 1024)
        got = next(chunks)
        imap_proxy.close()   # the IMAP connection is reset while the download waits for us
        with pytest.raises(requests.exceptions.RequestException):
            for chunk in chunks:
                got += chunk
    # what arrived is the message's start, and the client can tell the download is incomplete
    assert len(got) < len(raw) and raw.startswith(got)

    def api_said():
        text = api_log.read_bytes()[mark:].decode(errors="replace")
        return text if "download cut short" in text else None

    logged = wait_until(api_said, 10, "the API's 'download cut short' line")
    assert "Traceback" not in logged and "Error handling request" not in logged, logged
    imap_proxy.passthrough()
    stack.wait_state(proxied.id, "connected", timeout=30)
    wait_until(lambda: listing(api, proxied).status_code == 200, 20, "listing 200 again")


def test_smtp_reply_to_the_message_held_past_the_timeout_is_not_sent_twice(api, new_account, smtp,
                                                                           faultproxy):
    """The server got the whole message but its "250" is late (slow content scan): the client
    must keep waiting for it, not retry after the ordinary timeout and deliver a second copy."""
    proxy = faultproxy(smtp.port)
    acc = new_account(smtp={**smtp.account_config(), "port": proxy.port})
    body = "x" * 400 * 1024
    proxy.stall_after(300 * 1024, direction="down")   # mid-DATA: hold what the server says next
    resp = api.post(f"/v1/account/{acc.id}/submit", json={
        "from": {"address": "me@example.com"}, "to": [{"address": "x@example.com"}],
        "subject": "slow 250", "text": body})
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    smtp.wait_for(1, timeout=10)                      # the server has it
    time.sleep(float(STACK_ENV["SMTP_TIMEOUT"].rstrip("s")) + 2)   # longer than the timeout
    proxy.passthrough()
    item = outbox_state(api, queued["queueId"], ("sent", "failed"), 60)
    assert item["state"] == "sent" and item["attempts"] == 1, item
    time.sleep(3)   # a retry, if any, would arrive within its 2 s backoff
    assert smtp.attempts == 1 and len(smtp.received) == 1, smtp.received


def test_slow_server_connects_and_answers(api, stack, new_account, imap_proxy):
    imap_proxy.delay(200)   # every round trip of login, STARTTLS and the first sync is slow
    acc = new_account(imap={"port": imap_proxy.port}, wait=None)
    stack.wait_state(acc.id, "connected", timeout=40)
    resp = listing(api, acc)
    assert resp.status_code == 200, resp.text


def test_server_cut_mid_request_is_503(api, stack, proxied, imap_proxy):
    imap_proxy.delay(400)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(timed, listing, api, proxied)
        time.sleep(0.6)
        imap_proxy.close()
        resp, took = future.result()
    assert_error(resp, 503)
    assert took < COMMAND_TIMEOUT + MARGIN, took
    imap_proxy.passthrough()
    stack.wait_state(proxied.id, "connected", timeout=30)
    wait_until(lambda: listing(api, proxied).status_code == 200, 20, "listing 200 again")


def test_settings_change_of_a_stalled_account_does_not_delay_other_accounts(
        api, stack, new_account, proxied, imap_proxy):
    # Open extra command connections (slow concurrent requests) so the account has some to close.
    imap_proxy.delay(100)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(r.status_code == 200 for r in pool.map(lambda _: listing(api, proxied), range(4)))
    assert imap_proxy.active >= 2, imap_proxy.active
    imap_proxy.stall()
    # The reconnect is a settings change: handled on the sidecar's account-channel thread.
    resp = api.put(f"/v1/account/{proxied.id}/reconnect", json={"reconnect": True})
    assert resp.status_code == 200, resp.text
    start = time.monotonic()
    other = new_account(wait=None)
    stack.wait_state(other.id, "connected", timeout=30)
    assert time.monotonic() - start < 3.0, time.monotonic() - start
    imap_proxy.passthrough()
    stack.wait_state(proxied.id, "connected", timeout=30)

"""The web UI in a real browser (Playwright + Debian's chromium) against the real stack + Dovecot:
pages load cleanly, forms do what they say, 375 px wide pages have no horizontal scroll."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.checks import wait_until
from tests.fixtures.browser import browser_page, chromium  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration]

PAGES = ["/", "/ui/accounts", "/ui/accounts/new", "/ui/settings", "/ui/webhooks", "/ui/tokens"]


@pytest.fixture
def ui_account(api, dovecot, stack):
    """An account created through the add-account form; -> (id, user, password)."""
    created = []

    def make(page):
        user = "b" + uuid.uuid4().hex[:10]
        password = "pw-" + uuid.uuid4().hex[:10]
        dovecot.add_user(user, password)
        page.goto(stack.api_url + "/ui/accounts/new")
        page.fill("input[name=account]", user)
        page.fill("input[name=name]", "Browser " + user)
        page.fill("input[name='imap.host']", dovecot.host)
        page.fill("input[name='imap.port']", str(dovecot.port))
        page.uncheck("input[name='imap.secure']")
        page.check("input[name='imap.selfSigned']")
        page.fill("input[name='imap.user']", user)
        page.fill("input[name='imap.pass']", password)
        page.click("#account-form button[type=submit]")
        page.wait_for_url(f"**/ui/accounts/{user}*")
        created.append(user)
        return user, password

    yield make
    for account in created:
        api.delete(f"/v1/account/{account}")


def test_every_page_loads_without_errors(browser_page, stack, api, new_account):
    page, watch = browser_page
    acc = new_account()
    for path in PAGES + [f"/ui/accounts/{acc.id}", f"/ui/accounts/{acc.id}/delete",
                         "/ui/accounts?state=connected&q=" + acc.id[:4]]:
        resp = page.goto(stack.api_url + path)
        assert resp.status == 200, path
        page.wait_for_load_state("networkidle")
        assert watch.take() == [], path
        assert page.locator("main h1").count() == 1, path


def test_add_account_through_the_form_reaches_connected(browser_page, stack, ui_account):
    page, watch = browser_page
    account, password = ui_account(page)
    assert "created" in page.locator(".notice.ok").inner_text()

    def connected():
        page.reload()
        return page.locator("#account-state").inner_text() == "Connected"
    wait_until(connected, 30, "the account page shows Connected", step=0.5)
    assert password not in page.content()
    assert page.locator("#folders td", has_text="INBOX").count() >= 1
    page.goto(stack.api_url + "/ui/accounts?state=connected")
    assert page.locator(f"tr[data-account='{account}']").count() == 1
    assert watch.take() == []


def test_settings_form_sets_the_webhook_url_and_test_webhook_reaches_the_receiver(
        browser_page, stack, api, webhook_receiver):
    page, watch = browser_page
    name = "ui" + uuid.uuid4().hex[:8]
    page.goto(stack.api_url + "/ui/settings")
    page.fill("input[name=webhooks]", webhook_receiver.url(name))
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector(".notice.ok")
    assert api.get("/v1/settings", params={"webhooks": "true"}).json()["webhooks"] == \
        webhook_receiver.url(name)

    page.click("#test-webhook")
    result = page.wait_for_selector("#test-result")
    assert "HTTP 200" in result.inner_text()
    got = webhook_receiver.wait_for(lambda evs: [e for e in evs if e.get("event") == "test"],
                                    10, name=name)
    assert got[0]["data"]["message"]
    assert watch.take() == []
    api.post("/v1/settings", json={"webhooks": None})


def test_enable_log_make_a_request_download_it_login_redacted(browser_page, stack, api,
                                                              ui_account):
    page, watch = browser_page
    account, password = ui_account(page)
    wait_until(lambda: api.get(f"/v1/account/{account}").json()["state"] == "connected", 30,
               "connected")
    page.reload()
    page.click("#log-toggle")          # on, with "reconnect now" ticked: the log starts at LOGIN
    page.wait_for_selector("#log-state:has-text('on')")
    wait_until(lambda: api.get(f"/v1/account/{account}").json()["state"] == "connected"
               and api.get(f"/v1/account/{account}/messages", params={"path": "INBOX"})
               .status_code == 200, 30, "reconnected and listing")

    def login_logged():
        text = api.get(f"/v1/logs/{account}").text
        return " LOGIN " in text and "FETCH" in text or "SELECT" in text and " LOGIN " in text
    wait_until(login_logged, 30, "LOGIN and a command in the log")
    page.reload()
    with page.expect_download() as info:
        page.click("#log-download")
    download = info.value
    assert download.suggested_filename == f"logs-{account}.log"
    text = open(download.path(), encoding="utf-8").read()
    lines = [json.loads(line) for line in text.splitlines()]
    logins = [x for x in lines if " LOGIN " in x["msg"]]
    assert logins and all(x["msg"].endswith("LOGIN [redacted]") for x in logins)
    assert password not in text
    assert watch.take() == []

    page.click("#log-toggle")          # off: the log is gone
    page.wait_for_selector("#log-state:has-text('off')")
    assert api.get(f"/v1/logs/{account}").text == f"No logs found for {account}\n"


def test_pages_fit_375px_without_horizontal_scroll(chromium, stack, new_account, tmp_path):  # noqa: F811
    acc = new_account()
    context = chromium.new_context(viewport={"width": 375, "height": 800}, is_mobile=True)
    page = context.new_page()
    try:
        for path in PAGES + [f"/ui/accounts/{acc.id}", f"/ui/accounts/{acc.id}/reconnect"]:
            page.goto(stack.api_url + path)
            page.wait_for_load_state("networkidle")
            shot = tmp_path / (path.strip("/").replace("/", "_") or "overview")
            page.screenshot(path=str(shot) + ".png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path}: {width}px wide at a 375px viewport"
    finally:
        context.close()

"""Assertions and polling shared by unit and integration tests: the JSON error shape, wait_until."""
from __future__ import annotations

import time
from typing import Callable


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """Errors are JSON {statusCode, error, message, code?} carried with the HTTP status.

    `resp` is a Flask test response or a requests response; -> the body."""
    text = resp.get_data(as_text=True) if hasattr(resp, "get_data") else resp.text
    assert resp.status_code == status, f"{resp.status_code} {text[:500]}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.get_json() if hasattr(resp, "get_json") else resp.json()
    assert body["statusCode"] == status, body
    assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"], body
    if code:
        assert body["code"] == code, body
    return body


def wait_until(predicate: Callable, timeout: float = 20.0, what: str | Callable = "the condition",
               step: float = 0.2):
    """Poll predicate() until it returns something truthy (-> that value); AssertionError naming
    `what` (a string, or a callable giving one at the time) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")
        time.sleep(step)

"""Every outcome is JSON in one shape: 404, 405, 500 without a traceback, 503 when Redis is down."""
from __future__ import annotations

from imapapi import errors
from imapapi import settings as settings_mod
from tests.checks import assert_error

from .api_helpers import app, client  # noqa: F401  (fixtures)


def test_unknown_route_404(client):
    body = assert_error(client.get("/v2/nothing"), 404)
    assert body["message"] == "Requested page not found"


def test_wrong_method_405(client):
    assert_error(client.patch("/v1/accounts"), 405)


def test_unexpected_exception_is_generic_500(app):
    @app.get("/boom")
    def boom():
        raise ValueError("secret internals")

    resp = app.test_client().get("/boom")
    body = assert_error(resp, 500, "InternalError")
    assert body["message"] == "An internal server error occurred"
    assert "secret" not in resp.get_data(as_text=True)


def test_api_error_shape_keeps_extra(app):
    @app.get("/not-connected")
    def not_connected():
        raise errors.NotConnected("connectError")

    body = assert_error(app.test_client().get("/not-connected"), 503, "NotConnected")
    assert body["state"] == "connectError"
    assert body["error"] == "Service Unavailable"


def test_redis_down_gives_503(app):
    settings_mod.replace(redis_url="redis://127.0.0.1:1/0")
    client = app.test_client()
    assert_error(client.get("/v1/accounts"), 503)
    assert_error(client.get("/v1/account/x"), 503)
    resp = client.get("/health")
    assert resp.status_code == 503 and resp.get_json()["redis"] is False


def test_health_needs_a_fresh_sidecar(client, redis):
    import time

    from imapapi import keys

    assert client.get("/health").status_code == 503
    redis.zadd(keys.SIDECARS, {"sc-test": time.time()})
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["sidecars"] == 1
    redis.zadd(keys.SIDECARS, {"sc-test": time.time() - 60})
    assert client.get("/health").status_code == 503


def test_docs_openapi_ui_metrics(client):
    spec = client.get("/openapi.json").get_json()
    assert "/v1/account" in spec["paths"] and "/v1/accounts" in spec["paths"]
    assert "/v1/account/{account}/messages" in spec["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and b"/ui/accounts" in page.data
    assert client.get("/static/ui/ui.js").status_code == 200
    client.get("/v1/accounts")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'api_call_total{method="get",route="/v1/accounts",statusCode="200"}' in metrics
    assert 'imap_connections{status="connected"} 0.0' in metrics

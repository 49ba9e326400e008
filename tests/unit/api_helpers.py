"""Helpers for the API unit tests: the Flask app on real Redis (DB from IMAPAPI_TEST_REDIS_DB)."""
from __future__ import annotations

import importlib

import pytest

from celery_tasks.app import TASK_MODULES

from imapapi import settings as settings_mod

SEED = {
    "account": "example",
    "name": "My Example Account",
    "imap": {"host": "imap.gmail.com", "port": 993, "secure": True,
             "auth": {"user": "me@example.com", "pass": "verysecret"}},
    "smtp": {"host": "smtp.gmail.com", "port": 465, "secure": True,
             "auth": {"user": "me@example.com", "pass": "verysecret"}},
}


@pytest.fixture
def app(redis_url, redis):
    """Tasks run eagerly in-process (TASKS_EAGER): same functions and envelopes as the worker;
    the integration tests exercise the real worker."""
    from app import create_app

    previous = settings_mod.get_settings()
    redis.flushdb()
    application = create_app({"TESTING": True, "REDIS_URL": redis_url, "TASKS_EAGER": True})
    for module in TASK_MODULES:   # register the tasks on the process's app (imapapi.producer)
        importlib.import_module(module)
    yield application
    settings_mod.configure(previous)


@pytest.fixture
def client(app):
    return app.test_client()


def field_keys(body) -> set[str]:
    return {f["key"] for f in body["fields"]}

"""Task routing: webhooks and sending have their own queues, API operations the default one."""
import pytest

from imapapi import tasknames as T


@pytest.fixture()
def celery_app(monkeypatch):
    from imapapi import settings

    monkeypatch.setattr(settings, "_current", settings.Settings(redis_url="redis://127.0.0.1:6379/9"))
    from celery_tasks.app import make_celery

    return make_celery()


@pytest.mark.parametrize("name, queue", [
    (T.WEBHOOK_DELIVER, "webhooks"),
    (T.SUBMIT, "submit"),
    (T.MESSAGES_LIST, "celery"),
    (T.MAILBOXES_LIST, "celery"),
    (T.ACCOUNT_UPSERT, "celery"),
])
def test_queue_of_each_task(celery_app, name, queue):
    route = celery_app.amqp.router.route({}, name)
    assert route["queue"].name == queue


def test_worker_consumes_all_queues_by_default():
    from imapapi.settings import Settings

    assert set(Settings().worker_queues.split(",")) == {"celery", "submit", "webhooks"}

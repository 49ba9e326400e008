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


@pytest.mark.parametrize("name", [T.WEBHOOK_DELIVER, T.SUBMIT, T.MESSAGES_LIST, T.ACCOUNT_UPSERT])
def test_producer_routes_and_encodes_like_the_worker(celery_app, name):
    """A message the API or the sidecar produces by name (imapapi.producer) goes to the queue the
    worker consumes, in the serializer it accepts."""
    from imapapi import producer

    app = producer.make_celery()
    assert app.amqp.router.route({}, name)["queue"].name == \
        celery_app.amqp.router.route({}, name)["queue"].name
    for option in ("task_serializer", "accept_content", "broker_transport", "task_default_queue"):
        assert app.conf[option] == celery_app.conf[option], option


def test_one_producer_app_per_process(monkeypatch):
    from imapapi import producer, settings

    monkeypatch.setattr(settings, "_current", settings.Settings(redis_url="redis://127.0.0.1:6379/9"))
    from celery_tasks.app import celery as worker_celery

    assert producer.celery.main == "imapapi"
    assert worker_celery is producer.celery   # the worker publishes through the same app and pool
    assert producer.celery.pool is producer.celery.pool   # one broker connection pool, reused


def test_worker_consumes_all_queues_by_default():
    from imapapi.settings import Settings

    assert set(Settings().worker_queues.split(",")) == {"celery", "submit", "webhooks"}

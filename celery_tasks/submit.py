"""Sending: the imapapi.submit task (one outbox item, retried with backoff) and its plain functions."""
from __future__ import annotations

import logging
import time

from imapapi import accounts, authserver, errors, events, outbox, producer, rpc
from imapapi import tasknames as T
from imapapi.clock import iso
from imapapi.settings import get_redis, get_settings
from imapapi.smtp import SMTPFailure, send

from .app import celery
from .sweepers import in_every_worker
from .imap import run_op

log = logging.getLogger("imapapi.submit")

MAX_ATTEMPTS = 8          # 2+4+...+256 s of backoff before giving up on a transient failure
BACKOFF_BASE = 2.0
BACKOFF_MAX = 600.0
FLAG_FOR_ACTION = {"reply": "\\Answered", "forward": "$Forwarded"}


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: 2, 4, 8 ... capped at 10 min."""
    return min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)


def emit(redis, account: str, event: str, data: dict, *id_parts) -> None:
    """A sending event (imapapi.events.emit), quiet: it must never fail a delivered message."""
    events.emit(redis, account, event, data, id_parts=id_parts, quiet=True)


def _summary(item: dict) -> dict:
    return {"queueId": item["queueId"], "messageId": item.get("messageId"),
            "envelope": item.get("envelope")}


def deliver(redis, account: str, queue_id: str, *, max_attempts: int = MAX_ATTEMPTS) -> dict:
    """One attempt for an outbox item -> {"state", "retryIn"?}. Never sends an item twice:
    `outbox.claim` only hands out queued/deferred items, and "sent" is written right after the
    server accepted."""
    status, attempt = outbox.claim(redis, queue_id)
    if status != "ok":
        item = outbox.get(redis, queue_id) or {}
        if status == "sent" and not item.get("finished"):
            after_sent(redis, item)   # a previous run died between acceptance and filing
        return {"state": status}
    item = outbox.get(redis, queue_id)
    record = accounts.get_record(redis, account)
    smtp_config = (record or {}).get("smtp")
    if not isinstance(smtp_config, dict) or not smtp_config.get("host"):
        error = {"message": "SMTP configuration not found for account", "transient": False,
                 "code": None}
        outbox.mark_failed(redis, queue_id, error)
        emit(redis, account, "messageFailed", {**_summary(item), "error": error["message"]},
             queue_id)
        return {"state": "failed"}
    raw = outbox.raw_message(redis, queue_id)
    env = item["envelope"]
    timeout = get_settings().smtp_timeout
    try:
        # Fetched per attempt and only held for it: the auth server may rotate tokens.
        config = authserver.resolve(redis, account, "smtp", smtp_config, timeout=timeout)
        result = send(config, env["from"], env["to"], raw, timeout=timeout)
    except authserver.AuthServerError as exc:
        # Transient: the auth server may be down or not configured yet; retried with backoff.
        failure = SMTPFailure(exc.message, transient=True, code=exc.code)
        return _failed_attempt(redis, account, item, attempt, failure, max_attempts)
    except SMTPFailure as exc:
        return _failed_attempt(redis, account, item, attempt, exc, max_attempts)
    outbox.mark_sent(redis, queue_id, result)
    emit(redis, account, "messageSent",
         {**_summary(item), "response": result["response"], "rejected": result["rejected"] or None},
         queue_id)
    item = outbox.get(redis, queue_id) or item
    after_sent(redis, item)
    return {"state": "sent", "response": result["response"]}


def _failed_attempt(redis, account, item, attempt, exc: SMTPFailure, max_attempts) -> dict:
    queue_id = item["queueId"]
    error = exc.to_dict()
    if exc.transient and attempt < max_attempts:
        delay = backoff(attempt)
        outbox.mark_deferred(redis, queue_id, error, time.time() + delay)
        emit(redis, account, "messageDeliveryError",
             {**_summary(item), "error": exc.message, "errorCode": exc.code, "attempt": attempt,
              "nextAttempt": iso(time.time() + delay)}, queue_id, attempt)
        log.info("submit %s attempt %d deferred %.0fs: %s", queue_id, attempt, delay, exc.message)
        return {"state": "deferred", "retryIn": delay}
    outbox.mark_failed(redis, queue_id, error)
    emit(redis, account, "messageFailed",
         {**_summary(item), "error": exc.message, "errorCode": exc.code, "attempt": attempt},
         queue_id)
    log.warning("submit %s failed after %d attempt(s): %s", queue_id, attempt, exc.message)
    return {"state": "failed"}


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, errors.ApiError) else f"{type(exc).__name__}: {exc}"


def after_sent(redis, item: dict) -> None:
    """IMAP follow-ups once the server accepted: flag the referenced message, file the Sent copy.
    Each is best effort (the mail is out) and recorded so a re-run does not repeat it."""
    account, queue_id = item["account"], item["queueId"]
    timeout = get_settings().command_timeout
    ref = item.get("reference") or {}
    flag = FLAG_FOR_ACTION.get(ref.get("action"))
    if ref.get("message") and flag and not item.get("flagged"):
        try:
            rpc.result(redis, account, "submit.flag", {"message": ref["message"], "flag": flag},
                       timeout=timeout)
            outbox.set_fields(redis, queue_id, flagged=True)
        except Exception as exc:   # best effort: the message is out whatever happens here
            log.warning("submit %s: cannot flag reference: %s", queue_id, _reason(exc))
            outbox.set_fields(redis, queue_id, flagError=_reason(exc))
    if item.get("copy", True) and not item.get("copied"):
        try:
            res = rpc.result(redis, account, "submit.sentcopy", {"queue_id": queue_id},
                             timeout=timeout)
            outbox.set_fields(redis, queue_id, copied=True,
                              copyPath=res.get("path") or res.get("skipped") or "")
        except Exception as exc:
            log.warning("submit %s: cannot store Sent copy: %s", queue_id, _reason(exc))
            outbox.set_fields(redis, queue_id, copyError=_reason(exc))
    outbox.set_fields(redis, queue_id, finished=True)


# acks_late: claim/sent-marker make a redelivery harmless, and a worker crash must not drop mail.
@celery.task(name=T.SUBMIT, bind=True, acks_late=True, max_retries=None, ignore_result=True)
def submit(self, account: str, queue_id: str):
    """Send one outbox item; transient failures come back after backoff(attempt) seconds."""
    outcome = deliver(get_redis(), account, queue_id)
    if outcome.get("retryIn"):
        raise self.retry(countdown=outcome["retryIn"])
    return outcome


@celery.task(name=T.SUBMIT_REFERENCE, acks_late=True, ignore_result=False)
def submit_reference(account: str, message: str, attachments: bool = False,
                     timeout: float | None = None):
    """Look up a referenced message (threading headers, addresses, optionally attachments)."""
    return run_op("submit.reference", account, timeout=timeout, message=message,
                  attachments=attachments)


# -- lost-task recovery -----------------------------------------------------------------------
SWEEP_EVERY = 15.0


def sweep(redis) -> int:
    """Re-enqueue outbox items no task took in time (a lost broker message, a dead worker's
    ETA task). A duplicate is harmless: claim() hands an item to one attempt at a time."""
    found = outbox.overdue(redis)
    for queue_id, account in found:
        log.info("outbox %s was not picked up in time: re-enqueued", queue_id)
        producer.send(T.SUBMIT, {"account": account, "queue_id": queue_id})
    return len(found)


in_every_worker("outbox-sweeper", SWEEP_EVERY, lambda: sweep(get_redis()))

"""POST /v1/account/{account}/submit: compose, queue in the outbox, wait for the SMTP server."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import request
from flask.views import MethodView

from app.api import Blueprint, check_account_id
from app.tasks import run
from imapapi import accounts, compose, errors, outbox, producer
from imapapi import tasknames as T
from imapapi.settings import get_redis, get_settings

from .schemas import SubmitResultSchema, SubmitSchema

blp = Blueprint("submit", __name__, description="Send mail through the account's SMTP server")

WAIT_POLL = 0.05


def _too_large(key: str, size: int, limit: int) -> errors.BadRequest:
    return compose.bad(key, f"Message size {size} bytes exceeds the limit of {limit} bytes")


def _smtp_configured(record: dict) -> bool:
    smtp = record.get("smtp")
    return isinstance(smtp, dict) and bool(smtp.get("host"))


def _enqueue(account: str, queue_id: str, send_at: float | None) -> None:
    eta = datetime.fromtimestamp(send_at, timezone.utc) if send_at else None
    try:
        producer.send(T.SUBMIT, {"account": account, "queue_id": queue_id}, eta=eta)
    except Exception:
        # The item is stored; without a task nothing would ever send it, so do not leave it queued.
        outbox.mark_failed(get_redis(), queue_id, {"message": "Could not queue the send task",
                                                    "transient": False, "code": None})
        raise errors.Unavailable("Task queue (Redis) is not reachable",
                                 code="ServiceUnavailable") from None


def respond(queue_id: str, timeout: float):
    """Wait (up to `timeout`) for the send; 200 once the server accepted, 202 while pending."""
    redis = get_redis()
    deadline = time.monotonic() + timeout
    while True:
        item = outbox.get(redis, queue_id)
        if item is None:
            raise errors.NotFound("Queued message was not found", code="QueueItemNotFound")
        state = item["state"]
        # A future sendAt: nothing to wait for.
        if state == "queued" and (item.get("sendAt") or 0) > time.time() + 1:
            break
        # "sent" waits for the Sent copy and flags too (finished), so a client that reads its
        # Sent folder after a 200 finds the message there.
        if state in ("failed", "cancelled", "deferred") or (state == "sent" and item.get("finished")):
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(WAIT_POLL)
    base = {"queueId": queue_id, "messageId": item.get("messageId")}
    if state == "sent":
        return {**base, "response": item.get("response", "")}, 200
    if state == "failed":
        err = item.get("lastError") or {}
        raise errors.UpstreamError(err.get("message") or "Sending failed", code="SubmitFail",
                                   queueId=queue_id, messageId=item.get("messageId"))
    if state == "cancelled":
        raise errors.Conflict("The queued message was cancelled", code="Cancelled",
                              queueId=queue_id)
    out = {**base, "state": state}
    if item.get("sendAt"):
        out["sendAt"] = outbox.public(item).get("sendAt")
    return out, 202


@blp.route("/v1/account/<account>/submit")
class Submit(MethodView):
    @blp.arguments(SubmitSchema)
    @blp.response(200, SubmitResultSchema)
    @blp.alt_response(202, schema=SubmitResultSchema,
                      description="Queued: sendAt is in the future or a retry is pending")
    def post(self, data, account):
        """Send a message, optionally as a reply to or forward of a stored message

        With `reference`, the referenced message is looked up first (404, nothing sent, when it
        is gone); In-Reply-To/References and the subject are derived from it, a reply without
        `to` goes to its Reply-To/From, a forward carries its attachments (unless
        `reference.attachments` is false). After the SMTP server accepted, the reference gets
        \\Answered (reply) or $Forwarded (forward) and a copy without Bcc goes to Sent
        (unless `copy` is false or the server is Gmail). An `Idempotency-Key` header makes a
        repeated request return the first one's queueId without sending again.
        """
        account = check_account_id(account)
        redis, settings = get_redis(), get_settings()
        record = accounts.get_record(redis, account)
        if record is None:
            raise errors.AccountNotFound()
        if not _smtp_configured(record):
            raise errors.NotFound("SMTP configuration not found for this account",
                                  code="SMTPUnavailable")
        idem = request.headers.get("Idempotency-Key", "").strip() or None
        if idem and len(idem) > 256:
            raise compose.bad("Idempotency-Key", "Longer than 256 characters")
        if idem:
            existing = outbox.lookup_idempotent(redis, account, idem)
            if existing:
                return respond(existing, settings.command_timeout)
        limit = settings.submit_max_size
        size = compose.estimate_size(data)
        if size > limit:
            raise _too_large("attachments" if data.get("attachments") else "text", size, limit)

        payload = dict(data)
        ref = data.get("reference")
        if ref:
            action = ref["action"]
            parent = run(T.SUBMIT_REFERENCE, account=account, message=ref["message"],
                         attachments=action == "forward" and ref.get("attachments", True))
            payload = compose.apply_reference(payload, parent, action)
            if not (payload.get("to") or payload.get("cc") or payload.get("bcc")):
                raise compose.bad("to", "No recipients given and the referenced message has "
                                        "no Reply-To or From address")
        raw, message_id = compose.build(payload)
        if len(raw) > limit:
            raise _too_large("reference.attachments" if ref else "attachments", len(raw), limit)

        send_at = data["sendAt"].timestamp() if data.get("sendAt") else None
        if send_at and send_at <= time.time():
            send_at = None
        queue_id, created = outbox.create(
            redis, account=account, raw=raw, message_id=message_id,
            envelope=compose.envelope(payload),
            reference={"message": ref["message"], "action": ref["action"]} if ref else None,
            copy=data.get("copy", True), send_at=send_at, idempotency_key=idem)
        if created and not outbox.by_sweeper(send_at):
            _enqueue(account, queue_id, send_at)
        return respond(queue_id, settings.command_timeout)

"""Account tasks (upsert, delete, reconnect): thin wrappers over imapapi.accounts, validated here too.

Other services may call them with send_task (names in imapapi.tasknames); the payload is checked
with the same schema as the API, so a bad payload gets the same 400 error envelope.
"""
from __future__ import annotations

from imapapi import accounts, errors, rpc
from imapapi import tasknames as T
from imapapi.schemas import AccountSchema, load_account, take_payload
from imapapi.settings import get_redis

from .app import celery

# fields replaced as a unit when sent in a PUT (credentials must not be half merged)
_REPLACE_WHOLE = ("auth", "tls")


def merge_config(stored, sent):
    """Deep-merge a PUT's imap/smtp object into the stored one; `auth` is merged only when the
    caller sent no secret (so a masked form can change the user without re-sending the password)."""
    if sent is False or not isinstance(stored, dict):
        return sent
    out = dict(stored)
    for key, value in sent.items():
        if key == "auth" and isinstance(value, dict) and isinstance(stored.get("auth"), dict):
            if "pass" in value or "accessToken" in value:
                out["auth"] = value
            else:
                out["auth"] = {**stored["auth"], **value}
        elif key in _REPLACE_WHOLE or not isinstance(value, dict):
            out[key] = value
        else:
            out[key] = {**(stored.get(key) or {}), **value}
    # switching credential source drops the stored other one (sending both stays a 400)
    if sent.get("useAuthServer") and "auth" not in sent:
        out.pop("auth", None)
    elif "auth" in sent and "useAuthServer" not in sent:
        out.pop("useAuthServer", None)
    return out


def upsert(redis, data: dict, *, update: bool = False, account: str | None = None) -> dict:
    """POST (create or replace; -> {account, state}) or PUT (`update`: merge into the stored
    record, fields not sent are kept; -> {account})."""
    if not update:
        return accounts.upsert(redis, load_account(data))
    account = account or (data or {}).get("account")
    record = accounts.get_record(redis, account) if account else None
    if record is None:
        raise errors.AccountNotFound()
    changes = load_account(data, schema=AccountSchema, partial=True) if data else {}
    changes.pop("account", None)
    merged = {"account": account}
    for name in accounts.CONFIG_FIELDS:
        if name in record:
            merged[name] = record[name]
    for name, value in changes.items():
        merged[name] = merge_config(merged.get(name), value) if name in ("imap", "smtp") else value
    if isinstance(data, dict) and data.get("path") == "":
        merged.pop("path", None)   # an explicit "" goes back to all folders, as on POST
    accounts.upsert(redis, load_account(merged))
    return {"account": account}


def delete(redis, account: str) -> dict:
    if accounts.get_record(redis, account) is None:
        raise errors.AccountNotFound()
    return {"account": account, "deleted": accounts.delete(redis, account)}


def reconnect(redis, account: str, reconnect: bool = True) -> dict:
    """Ask the owning sidecar to drop and re-open the connection (any state, unlike the original)."""
    if accounts.get_record(redis, account) is None:
        raise errors.AccountNotFound()
    # a new reconnectRequested time tells the sidecar this is a forced reconnect, not a
    # settings change; never written for a record deleted since the check above
    if reconnect and not accounts.request_reconnect(redis, account):
        raise errors.AccountNotFound()
    return {"reconnect": bool(reconnect)}


_reconnect = reconnect   # the task's kwarg is also called `reconnect`


def _upsert_ref(redis, data, data_ref, update, account):
    if data_ref:
        data = take_payload(redis, data_ref)
    return upsert(redis, data, update=update, account=account)


@celery.task(name=T.ACCOUNT_UPSERT, acks_late=True, ignore_result=False)
def upsert_task(data: dict | None = None, update: bool = False, account: str | None = None,
                data_ref: str | None = None) -> dict:
    """Create/replace an account (update=True: partial update of `account`). Idempotent.

    The API passes `data_ref` (imapapi.schemas.stash_payload) so secrets stay out of the
    task arguments; other callers may pass `data` directly."""
    return rpc.envelope(_upsert_ref, get_redis(), data, data_ref, update, account)


@celery.task(name=T.ACCOUNT_DELETE, acks_late=True, ignore_result=False)
def delete_task(account: str) -> dict:
    """Delete an account and its data; the sidecar closes its connection. Idempotent."""
    return rpc.envelope(delete, get_redis(), account)


@celery.task(name=T.ACCOUNT_RECONNECT, acks_late=True, ignore_result=False)
def reconnect_task(account: str, reconnect: bool = True) -> dict:
    """Force a reconnect of the account's IMAP connection."""
    return rpc.envelope(_reconnect, get_redis(), account, reconnect)

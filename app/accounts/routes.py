"""Accounts routes (seed-compatible paths): /v1/account, /v1/account/{account}, /v1/accounts."""
from __future__ import annotations

from flask.views import MethodView

from app.api import Blueprint, check_account_id
from app.tasks import run
from imapapi import accounts, errors
from imapapi import tasknames as T
from imapapi.schemas import stash_payload
from imapapi.settings import get_redis

from .schemas import (AccountCreatedSchema, AccountDeletedSchema, AccountInfoSchema,
                      AccountListQuerySchema, AccountListSchema, AccountSchema,
                      AccountUpdatedSchema, AccountUpdateSchema, ReconnectResultSchema,
                      ReconnectSchema)

blp = Blueprint("account", __name__, description="Register and manage IMAP/SMTP accounts")


@blp.route("/v1/account")
class AccountCollection(MethodView):
    @blp.arguments(AccountSchema)
    @blp.response(200, AccountCreatedSchema)
    def post(self, data):
        """Register an account, or replace its settings when the id exists

        Fields left out of the payload are removed from a stored account (a POST describes the
        whole account). The owning sidecar (re)connects within a second.
        """
        return run(T.ACCOUNT_UPSERT, data_ref=stash_payload(get_redis(), data))


@blp.route("/v1/account/<account>")
class AccountItem(MethodView):
    @blp.response(200, AccountInfoSchema)
    def get(self, account):
        """Account settings (every secret masked), connection state and last error"""
        record = accounts.get_record(get_redis(), check_account_id(account))
        if record is None:
            raise errors.AccountNotFound()
        return accounts.public_view(record)

    @blp.arguments(AccountUpdateSchema(partial=True))
    @blp.response(200, AccountUpdatedSchema)
    def put(self, data, account):
        """Update some settings; fields not sent keep their stored values

        In `imap`/`smtp`, keys not sent are kept too; an `auth` without `pass`/`accessToken`
        keeps the stored secret.
        """
        account = check_account_id(account)
        return run(T.ACCOUNT_UPSERT, data_ref=stash_payload(get_redis(), data), update=True,
                   account=account)

    @blp.response(200, AccountDeletedSchema)
    def delete(self, account):
        """Delete an account: its connection is closed and its stored data removed"""
        return run(T.ACCOUNT_DELETE, account=check_account_id(account))


@blp.route("/v1/account/<account>/reconnect")
class AccountReconnect(MethodView):
    @blp.arguments(ReconnectSchema)
    @blp.response(200, ReconnectResultSchema)
    def put(self, data, account):
        """Close and re-open the account's IMAP connection (works in any state)"""
        return run(T.ACCOUNT_RECONNECT, account=check_account_id(account),
                   reconnect=data["reconnect"])


@blp.route("/v1/accounts")
class AccountList(MethodView):
    @blp.arguments(AccountListQuerySchema, location="query")
    @blp.response(200, AccountListSchema)
    def get(self, query):
        """List accounts (sorted by id), with state and last error; `pages` may be 0"""
        return accounts.list_page(get_redis(), query["page"], query["pageSize"], query.get("state"))

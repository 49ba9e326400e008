"""Account pages: list (paged, state filter, search), add, detail with edit form, reconnect,
delete (each through a confirmation page), and the per-account IMAP log switch."""
from __future__ import annotations

import json
import math
from urllib.parse import urlencode

import marshmallow as ma
from flask import abort, request, url_for

from app.tasks import run
from imapapi import accounts as store
from imapapi import errors, keys, protolog
from imapapi import tasknames as T
from imapapi.schemas import AccountSchema, AccountUpdateSchema, stash_payload
from imapapi.settings import get_redis

from .common import bp, done, form_bool, form_int, page, problem

PAGE_SIZE = 25
EVENTS_SHOWN = 20


@bp.get("/ui/accounts")
def accounts():
    redis = get_redis()
    state = request.args.get("state") or None
    if state not in store.STATES:
        state = None
    query = (request.args.get("q") or "").strip()
    try:
        page_no = max(0, int(request.args.get("page", 0)))
    except ValueError:
        page_no = 0
    rows = store.list_page(redis, 0, 10 ** 9, state)["accounts"]
    if query:
        q = query.lower()
        rows = [r for r in rows if q in r["account"].lower() or q in (r.get("name") or "").lower()]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page_no = min(page_no, pages - 1)
    shown = rows[page_no * PAGE_SIZE:(page_no + 1) * PAGE_SIZE]

    def args(p):
        return urlencode({k: v for k, v in (("state", state), ("q", query), ("page", p)) if v})

    return page("ui_accounts.html", title="Accounts", rows=shown, total=len(rows), state=state,
                query=query, page_no=page_no, pages=pages, args=args, states=store.STATES)


def _server_form(prefix: str, *, editing: bool = False) -> dict:
    """imap.* / smtp.* form fields -> the API's server settings object."""
    f = request.form
    out = {"host": (f.get(f"{prefix}.host") or "").strip(),
           "port": form_int(f"{prefix}.port"),
           "secure": form_bool(f"{prefix}.secure"),
           "tls": {"rejectUnauthorized": not form_bool(f"{prefix}.selfSigned")}}
    auth = {"user": f.get(f"{prefix}.user") or ""}
    if f.get(f"{prefix}.pass") or not editing:
        auth["pass"] = f.get(f"{prefix}.pass") or ""   # editing: blank keeps the stored password
    out["auth"] = auth
    return out


def _payload(editing: bool = False) -> dict:
    data = {"name": request.form.get("name") or ""}
    if not editing:
        data["account"] = (request.form.get("account") or "").strip()
    data["imap"] = _server_form("imap", editing=editing)
    if form_bool("smtp.enabled"):
        data["smtp"] = _server_form("smtp", editing=editing)
    elif editing:
        data["smtp"] = False
    return data


@bp.route("/ui/accounts/new", methods=["GET", "POST"])
def account_new():
    if request.method == "GET":
        return page("ui_account_form.html", title="Add account", values={}, editing=False)
    data = _payload()
    try:
        AccountSchema().load(data)   # the POST /v1/account schema: same 400 fields
        result = run(T.ACCOUNT_UPSERT, data_ref=stash_payload(get_redis(), data))
    except (ma.ValidationError, errors.ApiError) as exc:
        return page("ui_account_form.html", 400, title="Add account", values=request.form,
                    editing=False, problem=problem(exc))
    word = "created" if result.get("state") == "new" else "updated"
    return done("ui.account", f"Account {result['account']} {word}; it connects within seconds.",
                account=result["account"])


def _record_or_404(account: str) -> dict:
    record = store.get_record(get_redis(), account)
    if record is None:
        abort(404)
    return record


def _form_values(view: dict) -> dict:
    """A stored account as the edit form's field values (secrets never filled in)."""
    values = {"name": view.get("name", "")}
    for prefix in ("imap", "smtp"):
        conf = view.get(prefix)
        if not isinstance(conf, dict):
            continue
        values[f"{prefix}.enabled"] = "on"
        values[f"{prefix}.host"] = conf.get("host", "")
        values[f"{prefix}.port"] = conf.get("port", "")
        if conf.get("secure"):
            values[f"{prefix}.secure"] = "on"
        if (conf.get("tls") or {}).get("rejectUnauthorized") is False:
            values[f"{prefix}.selfSigned"] = "on"
        values[f"{prefix}.user"] = (conf.get("auth") or {}).get("user", "")
    return values


def latest_events(redis, account: str, count: int = EVENTS_SHOWN) -> list[dict]:
    out = []
    for sid, fields in redis.xrevrange(keys.events(account), count=count):
        try:
            ev = json.loads(fields.get(b"e") or b"{}")
        except ValueError:
            continue
        ev["cursor"] = sid.decode()
        out.append(ev)
    return out


def _detail(account: str, status: int = 200, **extra):
    redis = get_redis()
    record = _record_or_404(account)
    view = store.public_view(record)
    folders, folders_problem = None, None
    if view["state"] == "connected":
        try:
            folders = run(T.MAILBOXES_LIST, account=account, counters=True)
            folders = folders.get("mailboxes", []) if isinstance(folders, dict) else folders
        except errors.ApiError as exc:
            folders_problem = problem(exc)["message"]
    else:
        folders_problem = "Folders are listed once the account is connected."
    setting = protolog.get(redis)
    events = latest_events(redis, account)
    history = [e for e in events if e.get("event") in
               ("authenticationError", "authenticationSuccess", "connectError")]
    extra.setdefault("values", _form_values(view))
    return page("ui_account.html", status, title=f"Account {account}", active="ui.accounts",
                acc=view, record=record, masked=json.dumps(
                    {k: view[k] for k in ("imap", "smtp") if k in view}, indent=2),
                folders=folders, folders_problem=folders_problem, events=events, history=history,
                logging_on=protolog.enabled(setting, account),
                log_all=setting["all"], log_lines=redis.llen(protolog.log_key(account)),
                **extra)


@bp.get("/ui/accounts/<account>")
def account(account):
    return _detail(account)


@bp.post("/ui/accounts/<account>/edit")
def account_edit(account):
    _record_or_404(account)
    data = _payload(editing=True)
    try:
        AccountUpdateSchema(partial=True).load(data)   # as PUT /v1/account/{id}
        run(T.ACCOUNT_UPSERT, data_ref=stash_payload(get_redis(), data), update=True,
            account=account)
    except (ma.ValidationError, errors.ApiError) as exc:
        return _detail(account, 400, values=request.form, problem=problem(exc))
    return done("ui.account", "Settings saved; the account reconnects with them.",
                account=account)


@bp.route("/ui/accounts/<account>/<any(reconnect, delete):action>", methods=["GET", "POST"])
def account_action(account, action):
    _record_or_404(account)
    if request.method == "GET":
        return page("ui_confirm.html", title=f"{action.title()} {account}", active="ui.accounts",
                    account=account, action=action,
                    back=request.args.get("back") or url_for("ui.account", account=account))
    try:
        if action == "reconnect":
            run(T.ACCOUNT_RECONNECT, account=account, reconnect=True)
        else:
            run(T.ACCOUNT_DELETE, account=account)
    except errors.ApiError as exc:
        return page("ui_confirm.html", 400, title=f"{action.title()} {account}",
                    account=account, action=action, problem=problem(exc),
                    back=url_for("ui.account", account=account))
    if action == "reconnect":
        return done("ui.account", "Reconnect requested.", account=account)
    return done("ui.accounts", f"Account {account} deleted.")


@bp.post("/ui/accounts/<account>/log")
def account_log(account):
    _record_or_404(account)
    on = request.form.get("enable") == "1"
    protolog.set_account(get_redis(), account, on)
    if on and form_bool("reconnect"):
        # a fresh login, so the log starts with the connection (as resetLoggedAccounts does)
        run(T.ACCOUNT_RECONNECT, account=account, reconnect=True)
    if on:
        return done("ui.account", "IMAP logging is on; new protocol lines are recorded.",
                    account=account)
    return done("ui.account", "IMAP logging is off and the stored log was deleted.",
                account=account)

"""Tokens page: API tokens (imapapi.tokens) listed with scopes and last use, created (shown
once), revoked through a confirmation."""
from __future__ import annotations

from flask import request

from imapapi import errors, tokens
from imapapi.settings import get_redis

from .common import bp, done, form_bool, page, problem


def _page(status: int = 200, **extra):
    return page("ui_tokens.html", status, title="Tokens", rows=tokens.list_tokens(get_redis()),
                scopes=tokens.SCOPES, **extra)


@bp.get("/ui/tokens")
def tokens_page():
    return _page()


@bp.post("/ui/tokens")
def token_create():
    scopes = [s for s in tokens.SCOPES if form_bool(f"scope.{s}")]
    account = (request.form.get("account") or "").strip() or None
    description = (request.form.get("description") or "").strip()[:256]
    try:
        token, record = tokens.create(get_redis(), scopes, account=account,
                                      description=description)
    except (ValueError, errors.ApiError) as exc:
        message = problem(exc) if isinstance(exc, errors.ApiError) else {
            "message": str(exc) or "Invalid token settings.", "fields": []}
        return _page(400, problem=message)
    # shown once: only its hash is stored
    return _page(200, created={"token": token, **record})


@bp.post("/ui/tokens/<token_id>/revoke")
def token_revoke(token_id):
    if tokens.revoke(get_redis(), token_id):
        return done("ui.tokens_page", f"Token {token_id} revoked.")
    return done("ui.tokens_page", f"Token {token_id} was already gone.")

"""Routes /v1/tokens: create (the token is in this one answer only), list, revoke."""
from __future__ import annotations

from flask.views import MethodView

from app.api import Blueprint, requires
from app.security import forget_mode
from imapapi import errors, tokens
from imapapi.settings import get_redis

from .schemas import TokenCreatedSchema, TokenCreateSchema, TokenDeletedSchema, TokenListSchema

blp = Blueprint("tokens", __name__, description="API access tokens (needs a `*` token)")


@blp.route("/v1/tokens")
@requires("*")
class TokenCollection(MethodView):
    @blp.response(200, TokenListSchema)
    def get(self):
        """Tokens with scopes, account restriction and last use (never the token itself)"""
        return {"tokens": tokens.list_tokens(get_redis())}

    @blp.arguments(TokenCreateSchema)
    @blp.response(200, TokenCreatedSchema)
    def post(self, data):
        """Create a token; Redis keeps only its SHA-256, so this answer is the only copy"""
        token, record = tokens.create(get_redis(), data["scopes"], account=data.get("account"),
                                      description=data.get("description"))
        forget_mode()
        return {**record, "lastUsed": None, "token": token}


@blp.route("/v1/tokens/<token_id>")
@requires("*")
class TokenItem(MethodView):
    @blp.response(200, TokenDeletedSchema)
    def delete(self, token_id):
        """Revoke a token by its id"""
        if not tokens.revoke(get_redis(), token_id):
            raise errors.ApiError("Token not found", status=404, code="TokenNotFound")
        forget_mode()
        return {"deleted": True}

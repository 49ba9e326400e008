"""Route /v1/logs/{account}: the account's stored IMAP protocol log as a text download."""
from __future__ import annotations

import re

from flask import Response, stream_with_context
from flask.views import MethodView

from app.api import Blueprint, check_account_id
from imapapi import protolog
from imapapi.settings import get_redis

from .schemas import LogLineSchema

blp = Blueprint("logs", __name__, description="IMAP protocol logs")
_ = LogLineSchema


@blp.route("/v1/logs/<account>")
class Logs(MethodView):
    @blp.doc(responses={"200": {
        "description": "One JSON object per line: {t, cid, src, msg} (see LogLine)",
        "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def get(self, account):
        """Download the account's IMAP log (enable it with POST /v1/settings {"logs": ...})

        Both directions, with time and connection id; LOGIN/AUTHENTICATE arguments and tokens
        are redacted, long literals cut. Without a log: `No logs found for <account>`.
        """
        account = check_account_id(account)
        redis = get_redis()
        filename = "logs-" + re.sub(r"[^A-Za-z0-9._-]", "_", account)[:100] + ".log"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"',
                   "Cache-Control": "no-store"}
        if not redis.exists(protolog.log_key(account)):
            return Response(f"No logs found for {account}\n", 200, headers,
                            mimetype="text/plain")
        body = stream_with_context(protolog.read(redis, account))
        return Response(body, 200, headers, mimetype="text/plain")

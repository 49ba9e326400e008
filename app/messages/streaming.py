"""Turn a streamed task result ({stream, ...}) into a Flask streaming Response."""
from __future__ import annotations

import unicodedata
from urllib.parse import quote

from flask import Response, stream_with_context

from imapapi import rpc
from imapapi.settings import get_redis, get_settings

# Frames arrive as the sidecar reads the server; a stall longer than this ends the download.
FRAME_TIMEOUT_FACTOR = 3


def stream_response(result: dict, content_type: str, headers: dict | None = None) -> Response:
    """Read the first frame before answering, so an error found early is still a JSON 4xx/5xx;
    later errors can only cut the chunked body short (the client sees an incomplete download)."""
    frames = rpc.iter_stream(get_redis(), result["stream"],
                             timeout=get_settings().command_timeout * FRAME_TIMEOUT_FACTOR)
    first = next(frames, None)

    def body():
        try:
            if first:
                yield first
            yield from frames
        finally:
            frames.close()

    response = Response(stream_with_context(body()), content_type=content_type, headers=headers)
    response.direct_passthrough = True   # no buffering or re-encoding of the bytes
    return response


def content_disposition(filename: str | None, kind: str = "attachment") -> str:
    """RFC 6266: an ASCII fallback `filename=` and, for non-ASCII names, `filename*=UTF-8''...`."""
    if not filename:
        return kind
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in fallback)
    fallback = " ".join(fallback.split()) or "attachment"
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe="!#$&+-.^_`|~")
    return value

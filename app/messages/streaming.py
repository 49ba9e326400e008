"""Turn a streamed task result ({stream, ...}) into a Flask streaming Response."""
from __future__ import annotations

import errno
import logging
import unicodedata
from urllib.parse import quote

from flask import Response, stream_with_context
from redis import exceptions as redis_exceptions

from imapapi import errors
from imapapi.settings import get_redis, get_settings

from .frames import iter_frames

log = logging.getLogger("imapapi.api.download")

BACKEND_ERRORS = (redis_exceptions.RedisError, OSError)
# Frames arrive as the sidecar reads the server; a stall longer than this ends the download.
FRAME_TIMEOUT_FACTOR = 3


def stream_response(result: dict, content_type: str, headers: dict | None = None) -> Response:
    """Read the first frame before answering, so an error found early is still a JSON 4xx/5xx;
    later errors can only cut the body short (the client sees an incomplete download).

    `length` (the sidecar's exact byte count, when it knows it) goes out as Content-Length:
    then the server writes each frame as it is, with no chunk framing copied around it."""
    frames = iter_frames(get_redis(), result["stream"],
                         timeout=get_settings().command_timeout * FRAME_TIMEOUT_FACTOR)
    try:
        first = next(frames, None)
    except BACKEND_ERRORS as exc:
        log.error("lost Redis reading a download: %s", describe(exc))
        raise errors.Unavailable("Task queue (Redis) is not reachable",
                                 code="ServiceUnavailable") from None
    length = result.get("length")

    def body():
        sent = 0
        try:
            if first:
                sent += len(first)
                yield first
            for chunk in frames:
                sent += len(chunk)
                yield chunk
        except (errors.ApiError, *BACKEND_ERRORS) as exc:
            # The status line is gone: all that is left is to end the connection without a
            # proper end of body, so the client sees an incomplete download. Gunicorn closes
            # it quietly on a connection reset; any other exception it logs as a 500 traceback.
            log.warning("download cut short after %d bytes: %s", sent, describe(exc))
            raise ConnectionResetError(errno.ECONNRESET, "download cut short") from None
        finally:
            frames.close()

    response = Response(stream_with_context(body()), content_type=content_type, headers=headers)
    if isinstance(length, int) and length >= 0:
        response.headers["Content-Length"] = str(length)
    response.direct_passthrough = True   # no buffering or re-encoding of the bytes
    return response


def describe(exc: BaseException) -> str:
    """One log line's worth of an error (never a traceback; no secrets are in these)."""
    if isinstance(exc, errors.ApiError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


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

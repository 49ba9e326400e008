"""Registry of operations the sidecar runs for tasks: `@op("messages.list")` on `fn(ctx, **args)`.

An op receives an OpContext (see sidecar.context) and the command's JSON args, and returns a
JSON-able result or raises an imapapi.errors.ApiError. IMAP errors are translated once, in the
runtime, not in each op.

    ctx.account        account id
    ctx.redis          redis client
    ctx.settings       imapapi.settings.Settings
    ctx.registry       imapapi.ids.MailboxRegistry for the account
    ctx.client()       context manager -> an IMAPClient free for this op (IDLE paused on the main
                       connection, or an extra command connection when the main one is busy);
                       the folder selected afterwards is undefined: select what you need
    ctx.stream(result=None) -> StreamWriter: .write(bytes) (blocks for back-pressure), .close(meta);
                       calling it sends the Reply at once (ok, `result`, stream key) so the API
                       reads while the op keeps writing; raise errors BEFORE calling it to get a
                       normal error reply (later errors become an error frame). See sidecar.context.
    ctx.command        the wire.Command being run (id, deadline)

Clients use raw folder paths (modified UTF-7 as listed, `folder_encode = False`); convert user
input with sidecar.imap.codec.encode_mailbox / normalize_path.
"""
from __future__ import annotations

# Every op module registers itself on import (sidecar.ops.registry); importing them here makes
# the registry complete whoever imports the package first.
from . import download, mailbox, mailboxes, message, messages, modify, search, submit, upload  # noqa: F401
from .registry import OPS, op

__all__ = ["OPS", "op", "load_all"]


def load_all() -> dict:
    """The registry: op name -> fn(ctx, **args), every op module loaded."""
    return OPS

"""Celery task names: a public interface, callable with `celery.send_task(name, kwargs=...)`.

Every task returns a JSON envelope: {"ok": true, "result": ...} or
{"ok": false, "error": {"status": int, "code": str, "message": str, ...}}.
"""

PREFIX = "imapapi."

ACCOUNT_UPSERT = "imapapi.accounts.upsert"       # kwargs: data (payload dict) or data_ref (imapapi.schemas.stash_payload), update=False, account=None
ACCOUNT_DELETE = "imapapi.accounts.delete"       # kwargs: account
ACCOUNT_RECONNECT = "imapapi.accounts.reconnect"  # kwargs: account, reconnect=True (sets iad:{account} reconnectRequested, publishes)

MAILBOXES_LIST = "imapapi.mailboxes.list"        # kwargs: account, counters=False
MAILBOX_CREATE = "imapapi.mailboxes.create"      # kwargs: account, path (list of segments or str)
MAILBOX_RENAME = "imapapi.mailboxes.rename"      # kwargs: account, path, newPath
MAILBOX_DELETE = "imapapi.mailboxes.delete"      # kwargs: account, path

MESSAGES_LIST = "imapapi.messages.list"          # kwargs: account, path, page=0, pageSize=20
MESSAGES_SEARCH = "imapapi.messages.search"      # kwargs: account, path, search, page, pageSize
MESSAGE_GET = "imapapi.messages.get"             # kwargs: account, message, textType=None, maxBytes=0
MESSAGE_TEXT = "imapapi.messages.text"           # kwargs: account, text, textType='*', maxBytes=0
MESSAGE_SOURCE = "imapapi.messages.source"       # kwargs: account, message -> {stream, ...}
MESSAGE_ATTACHMENT = "imapapi.messages.attachment"  # kwargs: account, attachment -> {stream, ...}
MESSAGE_UPDATE = "imapapi.messages.update"       # kwargs: account, message, flags={add,delete,set}, path=None
MESSAGE_DELETE = "imapapi.messages.delete"       # kwargs: account, message, force=False
MESSAGE_UPLOAD = "imapapi.messages.upload"       # kwargs: account, data

SUBMIT = "imapapi.submit"                        # kwargs: account, queue_id
SUBMIT_REFERENCE = "imapapi.submit.reference"   # kwargs: account, message, attachments=False
WEBHOOK_DELIVER = "imapapi.webhooks.deliver"     # kwargs: account, event_id
WEBHOOK_DISPATCH = "imapapi.webhooks.dispatch"   # kwargs: (none) moves new stream events to delivery

# IMAP operations the sidecar runs: the task hands the command over and the sidecar answers on
# a reply key the caller waits on (imapapi.rpc). Reads are harmless to repeat (acks_late).
SIDECAR_READS = (MAILBOXES_LIST, MESSAGES_LIST, MESSAGES_SEARCH, MESSAGE_GET, MESSAGE_TEXT,
                 MESSAGE_SOURCE, MESSAGE_ATTACHMENT)
SIDECAR_WRITES = (MAILBOX_CREATE, MAILBOX_RENAME, MAILBOX_DELETE, MESSAGE_UPDATE, MESSAGE_DELETE,
                  MESSAGE_UPLOAD)
SIDECAR_TASKS = frozenset(SIDECAR_READS + SIDECAR_WRITES)

# Queues: webhooks and sending have their own, so neither sits in front of the API's requests.
DEFAULT_QUEUE = "celery"
ROUTES = {"imapapi.webhooks.*": {"queue": "webhooks"}, SUBMIT: {"queue": "submit"}}

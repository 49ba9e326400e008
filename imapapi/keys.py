"""Every Redis key the three runtimes share, in one place (layout follows the original IMAP API)."""
import hashlib

ACCOUNTS = "ia:accounts"                  # SET of account ids
SETTINGS = "ia:settings"                  # HASH setting name -> JSON
SIDECARS = "ia:sidecars"                  # ZSET sidecar id -> last heartbeat (epoch seconds)
OWNERS = "ia:owner"                       # HASH account -> sidecar id holding its connection
ACCOUNTS_CHANNEL = "ia:ch:accounts"       # PUBSUB: account id whose settings changed or was deleted
DEAD_LETTERS = "ia:webhooks:dead"         # LIST of webhook jobs that ran out of retries
OUTBOX = "ia:outbox"                      # ZSET queue id -> created (epoch)
OUTBOX_DUE = "ia:outbox-due"              # ZSET queue id -> when a task must have taken it
# Webhook job bookkeeping (the sidecar's commit, the webhook worker and the sweeper share them).
WEBHOOK_JOBS = "ia:wh:jobs"               # HASH event id -> JSON {stream, event}
WEBHOOK_DUE = "ia:wh:due"                 # ZSET event id -> epoch when the sweeper (re)enqueues it
WEBHOOK_ATTEMPTS = "ia:wh:attempts"       # HASH event id -> failed attempts so far
WEBHOOK_FIRST_FAIL = "ia:wh:first"        # HASH event id -> epoch of the first failure
WEBHOOK_RECENT = "ia:wh:recent"           # LIST: the last deliveries (JSON), newest first (web UI)
WEBHOOK_DONE = "ia:wh:done"               # HASH account -> highest `seq` delivered (duplicate check)
STATS_COUNTERS = "ia:stats:keys"          # SET of dashboard counter names (imapapi.stats)
ACCOUNT_STATES = "ia:states"              # HASH connection state -> number of accounts
LEASES = "ia:lease"                       # HASH account -> "<token>:<expires ms>:<sidecar id>"
LEASE_SEQ = "ia:lease:seq"                # STRING: the last lease token handed out
SIDECARS_INFO = "ia:sidecars:info"        # HASH sidecar id -> JSON (host, pid, leases, renew lag)
SIDECARS_CHANNEL = "ia:ch:sidecars"       # PUBSUB: a replica joined, left or released leases
TOKENS = "ia:tokens"                      # HASH sha256(token) hex -> JSON record (API tokens)
TOKENS_USED = "ia:tokens:used"            # HASH sha256(token) hex -> ISO time of the last request
LOGGED = "ia:logged"                      # SET: accounts that may have a protocol log list
SETTINGS_CHANNEL = "ia:ch:settings"       # PUBSUB: settings changed (sidecars reload `logs`)
SECRETS_KEY_ID = "ia:secrets:keyid"       # STRING: id of the key the secrets are sealed with (public)


def account(account_id: str) -> str:
    """HASH: the account record (settings as JSON fields, state, lastErrorState)."""
    return f"iad:{account_id}"


def mailbox_registry(account_id: str) -> str:
    """HASH: (uidValidity, path) key -> mailbox number, and 'ix:<n>' -> key; 'next' is the counter."""
    return f"iah:{account_id}"


def mailbox_listing(account_id: str) -> str:
    """HASH: normalized path -> JSON listing entry, written by the sidecar after LIST."""
    return f"ial:{account_id}"


def account_prefix(account_id: str) -> str:
    """Prefix of per-account keys removed when the account is deleted."""
    return f"iam:{account_id}:"


def mailbox_hash(path: str) -> str:
    """Stable short suffix for per-folder keys: SHA-1 of the path in base 36 (as the original)."""
    number = int.from_bytes(hashlib.sha1(path.encode("utf-8")).digest(), "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"


def folder_state(account_id: str, path: str) -> str:
    """HASH: per-folder sync state (uidValidity, uidNext, highestModseq, messages, index blob)."""
    return f"iam:{account_id}:h:{mailbox_hash(path)}"


def events(account_id: str) -> str:
    """STREAM: the account's change feed (replayable through /changes)."""
    return f"iam:{account_id}:events"


def sidecar_commands(sidecar_id: str) -> str:
    """LIST: commands for one sidecar (tasks LPUSH, the sidecar BRPOPs)."""
    return f"ia:sidecar:{sidecar_id}:cmd"


def reply(command_id: str) -> str:
    """LIST: the single reply to one command (short TTL)."""
    return f"ia:reply:{command_id}"


def stream(command_id: str) -> str:
    """LIST: byte chunks of a streamed result (source, attachment)."""
    return f"ia:stream:{command_id}"


def stream_gone(stream_key: str) -> str:
    """STRING: the API stopped reading that stream (client gone): the sidecar stops writing."""
    return f"{stream_key}:gone"


def outbox_item(queue_id: str) -> str:
    """HASH: one queued outgoing message."""
    return f"ia:outbox:{queue_id}"


def idempotency(account_id: str, key: str) -> str:
    """STRING: queue id already created for an Idempotency-Key."""
    return f"ia:idem:{account_id}:{key}"


def login_rate(host: str) -> str:
    """STRING (PX): the next free login slot of one IMAP host, shared by all replicas (GCRA)."""
    return "ia:login:" + hashlib.sha1(host.lower().encode()).hexdigest()[:16]


def pending_payload(ref: str) -> str:
    """STRING (short TTL): an account payload handed from the API to the upsert task by id, so
    passwords never travel in task arguments (broker messages, Flower, worker logs)."""
    return f"ia:pending:{ref}"


def stats_bucket(counter: str, day: str) -> str:
    """HASH: one dashboard counter's per-minute counts (field YYYYMMDDHHMM) for one UTC day."""
    return f"ia:stats:{counter}:{day}"


def webhook_busy(url: str) -> str:
    """ZSET: the in-flight POST slots of one receiver (slot -> start time)."""
    return "ia:wh:busy:" + hashlib.sha1(url.encode()).hexdigest()[:16]


def webhook_queue(account_id: str) -> str:
    """LIST: the account's event ids waiting for delivery, in feed order (one in flight)."""
    return f"ia:wh:q:{account_id}"


def webhook_lock(account_id: str) -> str:
    """STRING with a TTL: the token of the one delivery task working on the account's queue."""
    return f"ia:wh:lock:{account_id}"


def event_seq(account_id: str) -> str:
    """STRING counter: the last `seq` given to one of the account's events (gap-free per feed)."""
    return account_prefix(account_id) + "seq"

"""The seam between the connection runtime and change detection (implemented in sidecar.sync).

The runtime calls these with the account's MAIN connection held exclusively (no IDLE running),
from a pool thread. Each must leave the idle folder selected; the runtime then (re)starts IDLE.

    session.account       account id
    session.client        the IMAPClient of the main connection (logged in)
    session.capabilities  set of upper-case capability strings, e.g. {"IDLE", "CONDSTORE"}
    session.redis         redis client
    session.registry      imapapi.ids.MailboxRegistry
    session.record        the account record (dict, secrets in clear)
    session.next_tick     epoch seconds when on_tick is due next (the hooks set it)
    session.settings      imapapi.settings.Settings of the sidecar process

Clients are made by sidecar.connection.connect: `folder_encode = False` (folder paths are the
raw modified UTF-7 strings the server lists; sidecar.imap.codec converts) and
`normalise_times = False` (tz-aware datetimes). Hooks may add their own attributes to session.

Timing (sidecar.account): resume() runs once ops on the main connection pause for
RESUME_GRACE (100 ms), not after every op; on_idle_responses() gets only non-"OK" untagged
responses (plain "* OK Still here" keepalives never leave IDLE).
"""
from __future__ import annotations

IDLE_FOLDER = "INBOX"


class SyncHooks:
    """No change detection: keep INBOX selected so IDLE has a folder."""

    def on_connected(self, session) -> None:
        """After login (and on every reconnect): baseline / catch up, then select the idle folder."""
        session.client.select_folder(IDLE_FOLDER, readonly=True)

    def resume(self, session) -> None:
        """After an API op borrowed the main connection: select the idle folder again."""
        session.client.select_folder(IDLE_FOLDER, readonly=True)

    def on_idle_responses(self, session, responses: list) -> None:
        """Untagged responses that arrived during IDLE (EXISTS, EXPUNGE, FETCH, STATUS...)."""

    def on_tick(self, session) -> None:
        """Periodic work (e.g. a STATUS sweep); set session.next_tick."""
        session.next_tick = float("inf")

    def on_disconnected(self, session) -> None:
        """The main connection is gone (any reason)."""

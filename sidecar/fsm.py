"""The account state machine, pure: the transition table, its check, and what a connection
depends on (a change of it means reconnect). sidecar.account runs it.

The transitions, as TRANSITIONS codes them:

                       start (settings changed / reconnect requested)
            +-----------------------------------------------------+
            |                                                     |
            v                 ok                                  |
  init --start--> connecting -----------------------------> connected
            ^      |  |  ^                                        |
            |      |  |  |  start (reactor timer, 0.5-2.5 s)      | dropped
            |      |  |  +--------------------- disconnected <----+
            |      |  |  connect_failed
            |      |  +-------------> connectError ---------+
            |      |  auth_failed                           | start (reactor timer
            |      +-------------> authenticationError -----+  after backoff)
            |                                               |
            +-----------------------------------------------+

  connecting --start--> connecting   a settings change while the setup is still queued
  connecting --dropped--> disconnected   logged in, but the server ended the session during
                                        the first sync (Dovecot: a folder deleted under us)
  any state  --stop-->  stopped      in memory only: deleted, handed over, shutting down
"""
from __future__ import annotations

import json

# (state, event) -> next state. States are persisted (except "stopped"); events come from the runtime.
TRANSITIONS = {
    ("init", "start"): "connecting",
    ("disconnected", "start"): "connecting",
    ("connectError", "start"): "connecting",
    ("authenticationError", "start"): "connecting",
    ("connected", "start"): "connecting",          # settings changed: reconnect
    ("connecting", "start"): "connecting",
    ("connecting", "ok"): "connected",
    ("connecting", "auth_failed"): "authenticationError",
    ("connecting", "connect_failed"): "connectError",
    ("connected", "dropped"): "disconnected",
    ("connecting", "dropped"): "disconnected",
}
PERSISTED = {"connecting", "connected", "authenticationError", "connectError", "disconnected"}



class InvalidTransition(ValueError):
    pass


def transition(state: str, event: str) -> str:
    """Pure: next state, or InvalidTransition. "stop" is valid from every state."""
    if event == "stop":
        return "stopped"
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"{event!r} not allowed in state {state!r}") from None


def imap_signature(record: dict | None) -> str:
    """What a connection depends on: a change means reconnect with the new settings.

    `reconnectRequested` is a timestamp the reconnect task writes to force a fresh login."""
    record = record or {}
    return json.dumps([record.get("imap"), record.get("path"), record.get("reconnectRequested")],
                      sort_keys=True, default=str)

"""Shared core of IMAP API: settings, Redis keys, ids, errors, task names and the sidecar wire format."""
__version__ = "0.1.0"

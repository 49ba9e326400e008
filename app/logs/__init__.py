"""The /v1/logs resource (per-account IMAP protocol logs)."""

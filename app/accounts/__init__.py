"""Accounts resource: register, read, update, reconnect, list and delete IMAP/SMTP accounts."""

"""Celery tasks: the operations of IMAP API, by the names in imapapi.tasknames."""

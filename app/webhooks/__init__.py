"""Webhook dead letters: list them and re-send one."""

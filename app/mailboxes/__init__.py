"""Mailboxes resource: the folder listing of an account, served by its sidecar."""

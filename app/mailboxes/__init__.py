"""Mailboxes resource: an account's folders: the listing, and create, rename, delete."""

"""The process launcher: the `imap-api` console script, `serve` and the embedded Redis (imports every runtime; nothing imports it)."""

"""The sidecar: one persistent IMAP connection per account, IDLE, change detection, command server."""

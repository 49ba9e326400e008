"""Change detection: folder sync state, the pure diff, NOTIFY/STATUS watching and the hooks engine."""

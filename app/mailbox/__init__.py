"""Package mailbox: routes.py + schemas.py."""

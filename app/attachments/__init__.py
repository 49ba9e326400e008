"""Package attachments: routes.py + schemas.py."""

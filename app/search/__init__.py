"""Package search: routes.py + schemas.py."""

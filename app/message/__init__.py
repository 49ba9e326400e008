"""Package message: routes.py + schemas.py."""

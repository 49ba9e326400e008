"""Package text: routes.py + schemas.py."""

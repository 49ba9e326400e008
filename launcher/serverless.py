"""Platform conventions for the API process: listen on $PORT (Cloud Run, Knative, Heroku)."""
from __future__ import annotations

import dataclasses
import os

from imapapi.settings import ConfigError, Settings


def port_from_env(settings: Settings, argv: list[str], env: dict | None = None) -> Settings:
    """$PORT sets the API port unless API_PORT or --api.port says otherwise (those are explicit
    choices for this program; $PORT is what the platform hands every container)."""
    env = os.environ if env is None else env
    port = env.get("PORT", "")
    if not port or env.get("API_PORT") or any(a.startswith("--api.port=") for a in argv):
        return settings
    try:
        number = int(port)
    except ValueError as exc:
        raise ConfigError(f"PORT: not a number: {port!r}") from exc
    if not 1 <= number <= 65535:
        raise ConfigError(f"PORT: port out of range 1..65535: {number}")
    return dataclasses.replace(settings, api_port=number)

"""GET/POST /v1/settings: webhook target, event filter, messageNew text/headers, HMAC secret, auth server."""

"""Resource: /v1/tokens (API access tokens; needs a `*` token)."""

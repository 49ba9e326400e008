"""Schemas of GET /v1/account/{account}/attachment/{attachment} (binary; nothing to validate)."""

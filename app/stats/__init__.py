"""The /v1/stats resource (dashboard counters)."""

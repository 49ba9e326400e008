"""The op registry: `@op("messages.list")` on `fn(ctx, **args)` (contract in sidecar/ops/__init__.py)."""
from __future__ import annotations

OPS: dict = {}


def op(name: str):
    def register(fn):
        OPS[name] = fn
        return fn
    return register

"""Render charts/imap-api with helm-python-sdk (no helm binary) and pick documents out of it."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "imap-api"
RELEASE, NAMESPACE = "rel", "ns"
FULL = f"{RELEASE}-imap-api"

# The value sets the issue names; every chart test and the kubernetes-validate run use them.
VALUE_SETS: dict[str, dict] = {
    "defaults": {},
    "external-redis": {"redis": {"enabled": False},
                       "externalRedis": {"url": "redis://redis.example.internal:6379/2"}},
    "flower-ingress": {"flower": {"enabled": True, "basicAuth": {"password": "s3cret"},
                                  "ingress": {"enabled": True, "className": "nginx"}},
                       "api": {"ingress": {"enabled": True, "className": "nginx",
                                           "tls": [{"secretName": "api-tls",
                                                    "hosts": ["imap-api.example.com"]}]}}},
    "hpa": {"api": {"autoscaling": {"enabled": True}},
            "worker": {"autoscaling": {"enabled": True, "maxReplicas": 6}}},
    "sidecars-3": {"sidecar": {"replicas": 3}},
    "existing-secret": {"secrets": {"existingSecret": "my-imap-api", "keyFile": {"enabled": True}},
                        "redis": {"enabled": False},
                        "externalRedis": {"existingSecret": "my-redis", "existingSecretKey": "url"}},
    "production": {"networkPolicy": {"enabled": True}, "serviceMonitor": {"enabled": True},
                   "sidecar": {"metricsPort": 9464}, "worker": {"metricsPort": 9465},
                   "redis": {"auth": {"password": "p@ss word"}},
                   "secrets": {"webhookSecret": "whs", "encryptionKey": "k" * 32}},
}


def _chart():
    import helm_python

    return helm_python.Chart.load(str(CHART))


@lru_cache(maxsize=None)
def _render_cached(key: str) -> tuple:
    values = yaml.safe_load(key)
    out = _chart().render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for name, text in sorted(out.items()):
        if not name.endswith((".yaml", ".yml")):
            continue
        docs.extend((name, doc) for doc in yaml.safe_load_all(text) if doc)
    return tuple(docs)


def render(values: dict | None = None) -> list[dict]:
    """All rendered documents for these values (each a dict)."""
    return [doc for _, doc in _render_cached(yaml.safe_dump(values or {}, sort_keys=True))]


def notes(values: dict | None = None) -> str:
    out = _chart().render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for name, text in out.items() if name.endswith("NOTES.txt"))


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered; have {names(docs)}"
    return found[0]


def names(docs: list[dict]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}

"""The /v1/sidecars resource (sidecar replicas, their leases and renew lag)."""

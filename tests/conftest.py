"""Shared pytest setup: fixture modules under tests/fixtures/ register themselves here."""
import os

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.smtp",
    "tests.fixtures.webhooks",
    "tests.fixtures.faultproxy",
]

# One encryption key for the test session: in-process apps and every stack subprocess (they
# inherit the environment) read and write the same encrypted records (imapapi.vault).
os.environ.setdefault("ENCRYPTION_KEY", "3c7a0f6e2b9d41c8a5e6f70812d3b4c59a6e7f8091a2b3c4d5e6f708192a3b4c")

"""Shared pytest setup: fixture modules under tests/fixtures/ register themselves here."""
pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.smtp",
    "tests.fixtures.webhooks",
    "tests.fixtures.faultproxy",
]

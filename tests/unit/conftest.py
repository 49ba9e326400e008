"""Unit-test fixtures: `r`, a module-wide client of the test Redis DB (files needing cleanup or a
keyring define their own `r`, which takes precedence)."""
import os

import pytest
import redis as redis_lib


@pytest.fixture(scope="module")
def r():
    db = int(os.environ.get("IMAPAPI_TEST_REDIS_DB", "13"))
    client = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    client.ping()
    return client

"""Kombu's Redis transport, reusing one client per channel instead of building one per call."""
# kombu's redis Channel makes a new redis.Redis for every publish, every unacked-index update
# and every ack (`conn_or_acquire()` without a client). Redis.__init__ fills a ~300-entry
# case-insensitive callback table each time: profiled at about a third of the worker's CPU per
# API request, and part of the API's publish. A Redis object over a connection pool is
# thread-safe, so one per channel (per pool, since a reconnect swaps the pool) is enough.
from __future__ import annotations

from urllib.parse import urlparse

from kombu.transport import redis as kombu_redis

NAME = "imapapi.transport:Transport"


class Channel(kombu_redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def for_url(url: str) -> str | None:
    """The transport for a broker URL: ours for plain redis:// (others keep kombu's choice)."""
    return NAME if urlparse(url).scheme == "redis" else None

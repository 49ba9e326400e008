"""Kombu's Redis transport, reusing one client per channel instead of building one per call."""
# kombu's redis Channel makes a new redis.Redis for every publish, every unacked-index update
# and every ack (`conn_or_acquire()` without a client). Redis.__init__ fills a ~300-entry
# case-insensitive callback table each time: profiled at about a third of the worker's CPU per
# API request, and part of the API's publish. A Redis object over a connection pool is
# thread-safe, so one per channel (per pool, since a reconnect swaps the pool) is enough.
from __future__ import annotations

import functools
from urllib.parse import urlparse

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

NAME = "imapapi.transport:Transport"
# A message with this header is tracked unacked in the worker's memory only (see QoS).
MEMORY_ACK = "imapapi-memory-ack"


class QoS(kombu_redis.QoS):
    """Unacked bookkeeping in Redis only for messages whose redelivery can help someone.

    kombu writes every delivered message to the unacked hash and index (MULTI ZADD HSET EXEC)
    and removes it at the ack (MULTI ZREM HDEL EXEC): two blocking round trips on the worker's
    event loop, half of its Redis traffic for an API request. Those entries only matter when
    the worker dies: Redis then redelivers after the visibility timeout (an hour). An IMAP
    hand-off (app/tasks.run_direct) is sent with `expires` = its caller's deadline and the
    caller waits on a reply key until then, so that late redelivery would only be discarded
    as expired. Such messages carry MEMORY_ACK and are tracked in memory alone: a warm
    shutdown still puts back what was delivered and not acked (restore_by_tag below)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._memory_only: set = set()

    def append(self, message, delivery_tag):
        if (message.headers or {}).get(MEMORY_ACK):
            self._memory_only.add(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag):
        if delivery_tag in self._memory_only:
            self._memory_only.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        if delivery_tag in self._memory_only:
            if requeue:
                self.restore_by_tag(delivery_tag, leftmost=True)
            self._memory_only.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
            return
        super().reject(delivery_tag, requeue=requeue)

    def restore_by_tag(self, tag, client=None, leftmost=False):
        if tag not in self._memory_only:
            return super().restore_by_tag(tag, client=client, leftmost=leftmost)
        self._memory_only.discard(tag)
        message = self._delivered.get(tag)
        if message is None:
            return None
        delivery = message.delivery_info
        with self.channel.conn_or_acquire(client) as conn:
            pipe = conn.pipeline()
            self.channel._do_restore_message(message._raw, delivery["exchange"],
                                             delivery["routing_key"], pipe, leftmost)
            pipe.execute()
        return None


class Channel(kombu_redis.Channel):
    QoS = QoS
    _shared_client = None

    @functools.cached_property
    def client(self):
        # kombu's cached_property takes an RLock on every read, and the event loop reads the
        # BRPOP client about ten times per message; this one is a plain attribute once made
        # (kombu only ever reads or closes it through __dict__)
        return self._create_client(asynchronous=True)

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel

    def register_with_event_loop(self, connection, loop):
        super().register_with_event_loop(connection, loop)
        # kombu's tick callback re-adds every socket to the hub before each poll: an epoll
        # register that fails with EEXIST (an exception raised and caught) per socket and loop
        # turn, several turns per message (py-spy: 5 % of the worker's CPU per API read).
        # Ours adds a socket only when the hub does not have it (new, reconnected, resumed).
        for callback in list(loop.on_tick):
            if getattr(callback, "__qualname__", "").endswith(
                    "register_with_event_loop.<locals>.on_poll_start"):
                loop.on_tick.discard(callback)
        cycle, readers, add_reader = self.cycle, loop.readers, loop.add_reader
        on_readable = self.on_readable

        def on_poll_start():
            cycle.on_poll_start()
            for fd in cycle.fds:
                if readers.get(fd) != (on_readable, (fd,)):
                    add_reader(fd, on_readable, fd)
        loop.on_tick.add(on_poll_start)


def for_url(url: str) -> str | None:
    """The transport for a broker URL: ours for plain redis:// (others keep kombu's choice)."""
    return NAME if urlparse(url).scheme == "redis" else None

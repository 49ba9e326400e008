"""imapapi.transport: kombu's Redis transport with one reused client per channel, on real Redis."""
from __future__ import annotations

from kombu import Connection, Exchange, Queue

from imapapi import transport


def test_only_plain_redis_urls_get_our_transport():
    assert transport.for_url("redis://127.0.0.1:6379/3") == transport.NAME
    assert transport.for_url("rediss://example:6380/0") is None
    assert transport.for_url("sentinel://127.0.0.1:26379") is None


def test_channel_reuses_its_client_and_still_moves_messages(redis_url, redis):
    queue = Queue("imapapi-transport-test", Exchange("imapapi-transport-test"), "k")
    with Connection(redis_url, transport=transport.NAME) as conn:
        channel = conn.default_channel
        assert isinstance(channel, transport.Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
        producer = conn.Producer(serializer="json")
        for n in range(3):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="k",
                             declare=[queue])
        got = []
        with conn.Consumer(queue, callbacks=[lambda body, msg: (got.append(body), msg.ack())]):
            while len(got) < 3:
                conn.drain_events(timeout=5)
        assert got == [{"n": 0}, {"n": 1}, {"n": 2}]
        # acks went through the shared client: nothing is left in the unacked index
        assert redis.zcard("unacked_index") == 0


def test_a_new_pool_gets_a_new_client(redis_url):
    with Connection(redis_url, transport=transport.NAME) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as before:
            pass
        channel._pool = None          # what a reconnect does
        with channel.conn_or_acquire() as after:
            assert after is not before and after.connection_pool is channel.pool

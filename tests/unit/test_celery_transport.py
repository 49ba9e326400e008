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


def _deliver(conn, queue, headers, count=1):
    """Publish `count` messages with `headers` and take them without acking -> the messages."""
    producer = conn.Producer(serializer="json")
    for n in range(count):
        producer.publish({"n": n}, exchange=queue.exchange, routing_key="k", declare=[queue],
                         headers=headers)
    got = []
    consumer = conn.Consumer(queue, callbacks=[lambda body, msg: got.append(msg)])
    consumer.consume()
    while len(got) < count:
        conn.drain_events(timeout=5)
    return got


def test_memory_ack_messages_leave_nothing_in_redis_and_others_still_do(redis_url, redis):
    queue = Queue("imapapi-qos-test", Exchange("imapapi-qos-test"), "k")
    with Connection(redis_url, transport=transport.NAME) as conn:
        (plain,) = _deliver(conn, queue, {})
        assert redis.zcard("unacked_index") == 1 and redis.hlen("unacked") == 1
        plain.ack()
        (handover,) = _deliver(conn, queue, {transport.MEMORY_ACK: 1})
        # delivered and unacked, but only in the worker's memory: no MULTI/EXEC either way
        assert redis.zcard("unacked_index") == 0 and redis.hlen("unacked") == 0
        assert conn.default_channel.qos.can_consume()
        handover.ack()
        assert redis.zcard("unacked_index") == 0 and redis.hlen("unacked") == 0
        assert not conn.default_channel.qos._memory_only


def test_unacked_memory_ack_messages_are_put_back_when_the_channel_closes(redis_url, redis):
    queue = Queue("imapapi-qos-restore", Exchange("imapapi-qos-restore"), "k")
    with Connection(redis_url, transport=transport.NAME) as conn:
        taken = _deliver(conn, queue, {transport.MEMORY_ACK: 1}, count=2)
        taken[0].ack()
        assert redis.llen("imapapi-qos-restore") == 0
    # a warm shutdown closes the channel: the one not acked goes back to its queue, once
    assert redis.llen("imapapi-qos-restore") == 1
    with Connection(redis_url, transport=transport.NAME) as conn:
        body = conn.SimpleQueue("imapapi-qos-restore").get(timeout=5)
        assert body.payload == {"n": 1} and body.headers.get(transport.MEMORY_ACK) == 1
        body.ack()


def test_a_rejected_memory_ack_message_is_requeued_in_front(redis_url, redis):
    queue = Queue("imapapi-qos-reject", Exchange("imapapi-qos-reject"), "k")
    with Connection(redis_url, transport=transport.NAME) as conn:
        (msg,) = _deliver(conn, queue, {transport.MEMORY_ACK: 1})
        msg.reject(requeue=True)
        assert redis.llen("imapapi-qos-reject") == 1
        assert not conn.default_channel.qos._memory_only


def test_the_event_loop_adds_the_brpop_socket_once_and_keeps_delivering(redis_url):
    from kombu.asynchronous import Hub

    queue = Queue("imapapi-hub-test", Exchange("imapapi-hub-test"), "k")
    hub = Hub()
    added = []
    add_reader = hub.add_reader
    hub.add_reader = lambda fd, *args: (added.append(fd), add_reader(fd, *args))
    try:
        with Connection(redis_url, transport=transport.NAME) as conn:
            conn.transport.register_with_event_loop(conn.connection, hub)
            # kombu's own tick callback (re-adds every socket each turn) is replaced by ours
            ticks = [cb for cb in hub.on_tick if "on_poll_start" in cb.__qualname__]
            assert len(ticks) == 1 and ticks[0].__module__ == transport.__name__
            got = []
            consumer = conn.Consumer(queue, callbacks=[lambda body, msg: (got.append(body),
                                                                          msg.ack())])
            consumer.consume()
            producer = conn.Producer(serializer="json")
            loop = hub.create_loop()
            for n in range(3):
                producer.publish({"n": n}, exchange=queue.exchange, routing_key="k",
                                 declare=[queue])
                for _ in range(200):
                    if len(got) > n:
                        break
                    next(loop)
            assert got == [{"n": 0}, {"n": 1}, {"n": 2}]
            # one BRPOP socket, added to the hub once however many turns the loop took
            assert len(added) == len(set(added)) == 1
    finally:
        hub.close()

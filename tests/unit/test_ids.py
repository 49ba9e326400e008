"""Opaque ids: byte compatibility with the original IMAP API, round trips, malformed input, registry."""
from __future__ import annotations

import random
import string
import struct
import threading

import pytest

from imapapi import ids, keys
from imapapi.errors import AccountNotFound, MessageNotFound, NotFound


def test_reference_message_id():
    assert ids.decode_message_id("AAAAAQAAAeE") == (1, 481)
    assert ids.encode_message_id(1, 481) == "AAAAAQAAAeE"


def test_reference_text_id():
    assert ids.decode_text_id("AAAAAQAAAeGTkaExkaEykA") == (1, 481, [["1"], ["2"], []])
    assert ids.encode_text_id(1, 481, [["1"], ["2"], []]) == "AAAAAQAAAeGTkaExkaEykA"


def test_reference_attachment_id():
    assert ids.decode_attachment_id("AAAAAgAACrIyLjI") == (2, 2738, "2.2")
    assert ids.encode_attachment_id(2, 2738, "2.2") == "AAAAAgAACrIyLjI"


@pytest.mark.parametrize("mailbox,uid", [(1, 1), (7, 2**32 - 1), (2**32 - 1, 12345)])
def test_message_id_round_trip_and_urlsafe(mailbox, uid):
    encoded = ids.encode_message_id(mailbox, uid)
    assert set(encoded) <= set(string.ascii_letters + string.digits + "-_")
    assert "=" not in encoded and len(encoded) == 11
    assert ids.decode_message_id(encoded) == (mailbox, uid)


def test_text_and_attachment_round_trip():
    groups = [["1", "1.2"], ["2"], ["3.1.4"]]
    assert ids.decode_text_id(ids.encode_text_id(5, 99, groups)) == (5, 99, groups)
    assert ids.decode_attachment_id(ids.encode_attachment_id(5, 99, "1.2.3")) == (5, 99, "1.2.3")
    # A text or attachment id also identifies its message.
    assert ids.decode_message_id(ids.encode_attachment_id(5, 99, "2")) == (5, 99)


@pytest.mark.parametrize("bad", [
    "", "A", "AAAA", "not an id!", "AAAAAQAAAe=", "AAAAAAAAAeE",       # mailbox 0
    "AAAAAQAAAAA",                                                     # uid 0
    "../../etc", "AAAAAQAAAeE\n", "ÄÖÜ", "+/+/+/+/+/+", None, 12345,
])
def test_malformed_message_ids_are_message_not_found(bad):
    with pytest.raises(MessageNotFound):
        ids.decode_message_id(bad)


def test_random_garbage_never_raises_anything_else():
    rng = random.Random(1)
    alphabet = string.printable + "äß€"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        raw = ids.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 30))))
        for candidate in (text, raw):
            for decode in (ids.decode_message_id, ids.decode_text_id, ids.decode_attachment_id):
                try:
                    decode(candidate)
                except NotFound:
                    pass       # MessageNotFound or its text/attachment siblings: all 404s


def test_bad_attachment_part_and_text_payload_are_404():
    prefix = struct.pack(">II", 1, 481)
    with pytest.raises(NotFound):
        ids.decode_attachment_id(ids.b64encode(prefix + b"../x"))
    with pytest.raises(NotFound):
        ids.decode_text_id(ids.b64encode(prefix + b"\xc1\xff"))


def test_registry_allocates_stable_numbers(redis):
    account = "unit-ids-registry"
    redis.delete(f"iah:{account}")
    redis.hset(keys.account(account), "account", account)
    reg = ids.MailboxRegistry(redis, account)
    inbox = reg.number(1700000000, "INBOX")
    sent = reg.number(1700000000, "Sent")
    assert inbox >= 1 and sent != inbox
    assert reg.number(1700000000, "INBOX") == inbox
    # A new UIDVALIDITY is a different mailbox: old ids must not resolve to new messages.
    renewed = reg.number(1800000000, "INBOX")
    assert renewed not in (inbox, sent)
    # A fresh registry object (another process) sees the same numbers.
    other = ids.MailboxRegistry(redis, account)
    assert other.number(1700000000, "Ärger/Ünter") not in (inbox, sent, renewed)
    assert other.resolve(inbox) == (1700000000, "INBOX")
    assert other.resolve(renewed) == (1800000000, "INBOX")
    assert other.resolve(other.number(1700000000, "Ärger/Ünter")) == (1700000000, "Ärger/Ünter")
    with pytest.raises(MessageNotFound):
        other.resolve(999)


def test_registry_concurrent_allocation_is_unique(redis):
    account = "unit-ids-concurrent"
    redis.delete(f"iah:{account}")
    redis.hset(keys.account(account), "account", account)
    results: list[dict] = []

    def allocate():
        reg = ids.MailboxRegistry(redis, account)
        results.append({path: reg.number(1, path) for path in (f"F{i}" for i in range(30))})

    threads = [threading.Thread(target=allocate) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == results[0] for r in results)
    numbers = sorted(results[0].values())
    # consecutive from the registry's random base (a re-added account's ids do not repeat)
    assert numbers == list(range(numbers[0], numbers[0] + 30))
    assert ids.MailboxRegistry.BASES[0] < numbers[0] <= ids.MailboxRegistry.BASES[1]


def test_registry_resolve_is_cached_per_object(redis):
    account = "unit-ids-cached"
    redis.delete(f"iah:{account}")
    redis.hset(keys.account(account), "account", account)
    reg = ids.MailboxRegistry(redis, account)
    number = reg.number(7, "INBOX")
    assert reg.resolve(number) == (7, "INBOX")
    redis.delete(f"iah:{account}")      # a number never changes meaning: no second lookup
    assert reg.resolve(number) == (7, "INBOX")
    with pytest.raises(MessageNotFound):
        ids.MailboxRegistry(redis, account).resolve(number)


def test_registry_writes_nothing_for_a_deleted_account(redis):
    account = "unit-ids-deleted"
    redis.delete(f"iah:{account}", keys.account(account))
    with pytest.raises(AccountNotFound):
        ids.MailboxRegistry(redis, account).number(7, "INBOX")
    assert not redis.exists(f"iah:{account}")

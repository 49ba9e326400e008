"""Reconnect backoff: doubling from 2 s, 10 min cap, jitter bounds, auth failures start at 60 s."""
import pytest

from sidecar.backoff import CAP, Backoff, delay


@pytest.mark.parametrize("attempt,expected", [(1, 2), (2, 4), (3, 8), (4, 16), (9, 512), (10, 600),
                                              (50, 600)])
def test_doubles_to_cap_without_jitter(attempt, expected):
    assert delay(attempt, rand=0.5) == pytest.approx(expected)


@pytest.mark.parametrize("attempt,expected", [(1, 60), (2, 120), (4, 480), (5, 600)])
def test_auth_failures_start_at_a_minute(attempt, expected):
    assert delay(attempt, auth=True, rand=0.5) == pytest.approx(expected)


def test_jitter_stays_within_twenty_percent_and_cap():
    assert delay(3, rand=0.0) == pytest.approx(8 * 0.8)
    assert delay(3, rand=0.999999) == pytest.approx(8 * 1.2, rel=1e-4)
    assert delay(30, rand=0.999999) == CAP


def test_counter_resets_after_success():
    b = Backoff()
    first = [b.next() for _ in range(3)]
    assert first[0] < 3 and first[2] > 5
    b.reset()
    assert b.next() < 3

"""The shared rate limiter: even pacing, header feedback, one pause for every worker on a 429."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from braze_sends.ratelimit import RateLimiter, RateLimitHeaders


class FakeClock:
    """A clock shared by threads: sleeping advances it (the limiter's order is what we test)."""

    def __init__(self):
        self.now = 1_000.0
        self.lock = threading.Lock()

    def time(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now = max(self.now, self.now + seconds)


def fake_limiter(rph, **kw):
    clock = FakeClock()
    return RateLimiter(rph, clock=clock.time, wall=clock.time, sleep=lambda s: None, **kw), clock


def test_headers_are_parsed_case_insensitively_and_tolerate_garbage():
    parsed = RateLimitHeaders.parse(
        {
            "X-RateLimit-Limit": "250000",
            "x-ratelimit-remaining": "12",
            "X-RATELIMIT-RESET": "1800000000",
        }
    )
    assert parsed == RateLimitHeaders(limit=250000, remaining=12, reset_at=1_800_000_000.0)
    assert RateLimitHeaders.parse({"x-ratelimit-remaining": "lots"}).remaining is None


def test_slots_are_spaced_evenly_at_the_budget():
    limiter, _clock = fake_limiter(3600)  # one per second
    slots = []
    for _ in range(5):
        limiter.acquire()
        slots.append(limiter._next_slot - limiter.interval)
    assert slots == pytest.approx([1000, 1001, 1002, 1003, 1004])


def test_low_remaining_stretches_the_spacing_until_the_reset():
    limiter, clock = fake_limiter(3600 * 100)  # 100/s budget
    limiter.observe(RateLimitHeaders(remaining=10, reset_at=clock.now + 20))
    assert limiter._stretched_interval == pytest.approx(2.0)  # 10 left over 20 s
    # A new window (another reset time): 5,000 left over an hour is one per 0.72 s.
    limiter.observe(RateLimitHeaders(remaining=5000, reset_at=clock.now + 3600))
    assert limiter._stretched_interval == pytest.approx(0.72)
    # Out-of-order responses of the same window: the lowest remaining count wins.
    limiter.observe(RateLimitHeaders(remaining=7000, reset_at=clock.now + 3600))
    assert limiter._stretched_interval == pytest.approx(0.72)


def test_requests_in_flight_are_taken_off_the_remaining_count():
    limiter, clock = fake_limiter(3600 * 100)
    for _ in range(5):
        limiter.acquire()
    limiter.done()  # one answered: four still in flight, perhaps not yet counted by the server
    limiter.observe(RateLimitHeaders(remaining=10, reset_at=clock.now + 20))
    assert limiter._stretched_interval == pytest.approx(20 / 6)
    for _ in range(6):
        limiter.acquire()  # ten in flight: the ten remaining are spoken for
    limiter.observe(RateLimitHeaders(remaining=10, reset_at=clock.now + 20))
    assert limiter._paused_until == pytest.approx(clock.now + 20)


def test_remaining_zero_pauses_everyone_until_the_reset():
    limiter, clock = fake_limiter(3600 * 100)
    limiter.observe(RateLimitHeaders(remaining=0, reset_at=clock.now + 30))
    assert limiter._paused_until == pytest.approx(clock.now + 30)


def test_limiter_never_exceeds_its_budget_over_any_window_with_many_threads():
    """Real threads, real time: 8 workers against a 40/s budget for ~1.5 s."""
    limiter = RateLimiter(40 * 3600)
    stamps: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 1.5

    def worker():
        while time.monotonic() < stop:
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) >= 40  # it did run at the budget, not below it
    for i, start in enumerate(stamps):  # any 0.5 s window holds at most 20 (+1 at its edge)
        inside = sum(1 for s in stamps[i:] if s - start < 0.5)
        assert inside <= 21
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 1 / 40 * 0.8  # paced, not bursting


def test_a_429_pauses_every_worker_until_the_reset():
    """One worker sees a 429; the others, already waiting, send nothing before the reset."""
    limiter = RateLimiter(50 * 3600)
    reset_in = 0.6
    sent_after_pause: list[float] = []
    lock = threading.Lock()
    pause_started = threading.Event()

    def worker():
        pause_started.wait()
        for _ in range(3):
            limiter.acquire()
            with lock:
                sent_after_pause.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    began = time.monotonic()
    limiter.pause_until_reset(time.time() + reset_in, fallback=60)
    pause_started.set()
    for t in threads:
        t.join()
    assert len(sent_after_pause) == 18
    assert min(sent_after_pause) - began >= reset_in - 0.02
    assert limiter.pauses == 1


def test_budget_must_be_positive():
    with pytest.raises(ValueError):
        RateLimiter(0)

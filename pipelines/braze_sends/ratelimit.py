"""One request budget shared by every worker: even pacing, Braze's rate-limit headers, 429 pauses.

Braze gives a workspace one pool for `/sends/data_series` and its sibling export endpoints
(250,000 requests per clock hour). The limiter

- spaces requests evenly at `requests_per_hour` instead of bursting,
- reads `x-ratelimit-remaining` / `x-ratelimit-reset` and stretches the spacing so the remaining
  requests last until the reset (other tools drain the same pool); the requests this pipeline
  still has in flight are taken off the count first, since the server may not have counted them
  yet (with dozens of workers, a count read as is let a burst overrun the window's end),
- on a 429 pauses *every* worker until the reset, not each on its own.

Clock and sleep are injected so the policy is tested without waiting.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimitHeaders:
    """Braze's rate-limit headers of one response (any of them may be missing)."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # UTC epoch seconds

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        """Read the headers case-insensitively (over HTTP/2 they arrive lowercase)."""
        lowered = {k.lower(): v for k, v in headers.items()}

        def number(name: str) -> float | None:
            try:
                return float(lowered[name])
            except (KeyError, TypeError, ValueError):
                return None

        limit, remaining = number("x-ratelimit-limit"), number("x-ratelimit-remaining")
        return cls(
            limit=None if limit is None else int(limit),
            remaining=None if remaining is None else int(remaining),
            reset_at=number("x-ratelimit-reset"),
        )


class RateLimiter:
    """Paces requests of all workers to one budget.

    Args:
        requests_per_hour: the budget this pipeline may use.
        reserve: requests kept back from the server's remaining count, besides those in
            flight (see `done`).
        clock: monotonic seconds; wall: UTC epoch seconds; sleep: blocks for seconds.
    """

    def __init__(
        self,
        requests_per_hour: float,
        *,
        reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not requests_per_hour > 0:
            raise ValueError(f"requests_per_hour must be > 0, got {requests_per_hour!r}")
        self.interval = 3600.0 / float(requests_per_hour)
        self.reserve = reserve
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._paused_until = 0.0  # monotonic
        self._stretched_interval = 0.0
        self._window_reset: float | None = None
        self._window_remaining: int | None = None
        self._in_flight = 0  # acquired, not yet `done`
        self.waited = 0.0
        self.pauses = 0

    def acquire(self) -> float:
        """Block until the caller may send one request; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + max(self.interval, self._stretched_interval)
                pause_seen = self._paused_until
            delay = slot - now
            if delay > 0:
                self._sleep(delay)
                waited += delay
            with self._lock:
                # A 429 seen while we slept moves everybody behind the reset.
                if self._paused_until <= pause_seen or self._paused_until <= self._clock():
                    self.waited += waited
                    self._in_flight += 1
                    return waited

    def done(self) -> None:
        """The request of an `acquire` got its answer (or failed): no longer in flight."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def observe(self, headers: RateLimitHeaders) -> None:
        """Follow the server's count: spread what remains of the pool until its reset."""
        if headers.remaining is None or headers.reset_at is None:
            return
        with self._lock:
            if self._window_reset != headers.reset_at:
                self._window_reset = headers.reset_at
                self._window_remaining = headers.remaining
            else:  # responses arrive out of order: the lowest count is the latest
                self._window_remaining = min(self._window_remaining or 0, headers.remaining)
            seconds_left = headers.reset_at - self._wall()
            usable = self._window_remaining - self.reserve - self._in_flight
            if seconds_left <= 0:
                self._stretched_interval = 0.0
            elif usable <= 0:
                self._pause_locked(seconds_left)
            else:
                self._stretched_interval = seconds_left / usable

    def pause_until_reset(self, reset_at: float | None, fallback: float) -> float:
        """Hold every worker until `reset_at` (epoch seconds), or for `fallback` seconds.

        Returns the pause in seconds, jitter included.
        """
        seconds = fallback if reset_at is None else max(0.0, reset_at - self._wall())
        seconds += self.jitter(seconds)
        with self._lock:
            self._pause_locked(seconds)
        return seconds

    def jitter(self, seconds: float) -> float:
        """A small random delay so workers (and other clients) don't all fire at the reset."""
        return self._rng.uniform(0.0, min(1.0, 0.1 * seconds + 0.05))

    def _pause_locked(self, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
        self._stretched_interval = 0.0

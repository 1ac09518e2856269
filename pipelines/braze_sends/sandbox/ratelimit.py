"""Braze's fixed-window rate limit: a budget per window aligned to multiples of the window length
in real epoch time (the top of the hour for the default 3600 s window).

Windows follow real wall time, not the sandbox clock, so that tests and benchmarks can observe
resets. Every request counts, including rejected and unauthorized ones.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """The budget: ``limit`` requests per ``window_seconds``."""

    limit: int = 250_000
    window_seconds: float = 3600
    send_reset: bool = True  # False: no x-ratelimit-reset header on 429 responses

    def __post_init__(self) -> None:
        if self.limit < 0 or self.window_seconds <= 0:
            raise ValueError("limit must be >= 0 and window_seconds > 0")


@dataclass(frozen=True)
class RateLimitState:
    """The outcome of counting one request."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # UTC epoch seconds of the end of the window, rounded up

    def headers(self, *, throttled: bool = False, send_reset: bool = True) -> dict[str, str]:
        """The lowercase ``x-ratelimit-*`` headers (``throttled``: answer as a 429)."""
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": "0" if throttled else str(self.remaining),
        }
        if send_reset or not throttled:
            headers["x-ratelimit-reset"] = str(self.reset)
        return headers


class FixedWindowLimiter:
    """Thread-safe counter of requests in the current window."""

    def __init__(self, config: RateLimit, wall: Callable[[], float] = time.time):
        self.config = config
        self._wall = wall
        self._lock = threading.Lock()
        self._window = -1
        self._count = 0

    def hit(self) -> RateLimitState:
        """Count one request and tell whether it is within the budget."""
        now = self._wall()
        size = self.config.window_seconds
        with self._lock:
            window = math.floor(now / size)
            if window != self._window:
                self._window, self._count = window, 0
            self._count += 1
            count = self._count
        limit = self.config.limit
        return RateLimitState(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset=math.ceil((window + 1) * size),
        )

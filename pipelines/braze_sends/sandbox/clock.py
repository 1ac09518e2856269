"""The sandbox clock: the "now" that the data follows (restatement, retention, default ``ending_at``).

Unfrozen, it runs at real speed from an offset; frozen, it stays put until set or advanced.
Rate-limit windows do not use it: they follow real wall time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """A thread-safe, controllable clock returning aware UTC datetimes."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False):
        self._lock = threading.Lock()
        self._base = _aware(start) if start is not None else datetime.now(UTC)
        self._anchor = time.monotonic()
        self._frozen = frozen

    def now(self) -> datetime:
        """The current sandbox time (aware, UTC)."""
        with self._lock:
            return self._now()

    def _now(self) -> datetime:
        if self._frozen:
            return self._base
        return self._base + timedelta(seconds=time.monotonic() - self._anchor)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (aware); a running clock keeps running from there."""
        moment = _aware(moment)
        with self._lock:
            self._base, self._anchor = moment, time.monotonic()

    def advance(self, delta: timedelta) -> None:
        """Move the clock by ``delta`` (may be negative)."""
        with self._lock:
            self._base, self._anchor = self._now() + delta, time.monotonic()

    def freeze(self) -> None:
        """Stop the clock at the current time."""
        with self._lock:
            self._base, self._frozen = self._now(), True

    def unfreeze(self) -> None:
        """Let the clock run at real speed from where it stands."""
        with self._lock:
            self._anchor, self._frozen = time.monotonic(), False


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the sandbox clock needs a timezone-aware datetime")
    return moment.astimezone(UTC)

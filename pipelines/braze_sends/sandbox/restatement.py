"""How much of a day's final numbers Braze has booked at a given moment (the restatement model).

Every metric belongs to a *stage*: how quickly its events are booked. For a day ``d`` of a send,
the visible value of a metric at ``as_of`` is ``floor(final * booked_fraction(stage))`` (rounded
to cents for money). The fraction is

    F = r * A + (1 - r) * (1 - (1 - B) ** p)

where ``A`` is how much of the day's activity period has elapsed (from the send time, or from
local midnight, to the end of day ``d``) and ``B`` how much of the settling period has elapsed
(from the end of day ``d`` to ``settle_days`` after it). ``F`` is 0 before the day's activity
starts, grows monotonically, and is exactly 1 from ``end of day d + settle_days`` on: the day is
then final.

Stages are ordered so that a slower stage is never ahead of a faster one at any moment
(``r`` and ``p`` both decrease). Because ``floor`` is monotone, a metric that is a subset of
another (``unique_opens`` of ``opens``, ``delivered`` of ``sent``) and belongs to the same or a
slower stage stays within it at every ``as_of``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Stage indices.
SENT = 0  # sent, enrolled, sent_to_carrier, unique_recipients of sent channels
DELIVERY = 1  # delivered, bounces, undelivered, failures (ESP retries for a while)
ENGAGEMENT = 2  # opens, clicks, impressions, reads (booked when they happen, reported late)
UNIQUE = 3  # unique_* counts, unsubscribes, spam reports (deduplicated over several days)
CONVERSION = 4  # conversions*, revenue
BY_SEND_TIME = 5  # conversions*_by_send_time (back-filled onto the send day)

# (share booked in real time during the day, exponent of the settling tail) per stage.
STAGE_CURVES: tuple[tuple[float, float], ...] = (
    (0.98, 8.0),
    (0.90, 6.0),
    (0.75, 4.0),
    (0.55, 3.0),
    (0.35, 2.0),
    (0.10, 1.5),
)
STAGES = len(STAGE_CURVES)
ALL_BOOKED: tuple[float, ...] = (1.0,) * STAGES
NONE_BOOKED: tuple[float, ...] = (0.0,) * STAGES

DEFAULT_SETTLE_DAYS = 5.0
MAX_SETTLE_DAYS = 14.0  # exclusive: a day must settle while Braze still keeps it


def day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """UTC epoch seconds of local midnight starting and ending ``day`` (DST-aware)."""
    start = datetime.combine(day, time(), tzinfo=tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).timestamp()
    return start, end


def booked_fractions(
    as_of: float, activity_start: float, day_end: float, settle_days: float
) -> tuple[float, ...]:
    """Share of each stage's final value booked at ``as_of`` (all epoch seconds).

    Args:
        as_of: the moment the data is observed.
        activity_start: when the day's activity starts (the send time on the send day,
            local midnight on later days).
        day_end: local midnight ending the day.
        settle_days: days after ``day_end`` from which every value of the day is final.
    """
    if as_of <= activity_start:
        return NONE_BOOKED
    settle_end = day_end + settle_days * 86400.0
    if as_of >= settle_end:
        return ALL_BOOKED
    span = day_end - activity_start
    elapsed = 1.0 if as_of >= day_end or span <= 0 else (as_of - activity_start) / span
    if as_of <= day_end:
        tail = 0.0
    else:
        tail = (as_of - day_end) / (settle_end - day_end)
    rest = 1.0 - tail
    return tuple(r * elapsed + (1.0 - r) * (1.0 - rest**p) for r, p in STAGE_CURVES)

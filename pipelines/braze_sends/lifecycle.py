"""The window lifecycle of a send: which days to request, when, and what a response means.

Braze keeps a send's analytics for 14 days after the send and restates recent days until then.
Each registered pair moves through:

    new ──pull with activity──> open ──pull at/after the close──> final
     │                           │
     │ 400 before the close      │ zeros / empty / error over captured days (retention signal)
     v                           v
   failed (retried later,      final (stored numbers kept, never overwritten with zeros)
   growing interval)
     │
     └─window closed, nothing ever captured──> expired (data lost: loud)

A send is never declared lost without asking Braze: a never-captured send past its close gets one
last request (Braze may keep data a little longer than our conservative close), and only a
response with nothing in it, or an error, makes it expired.

Pure functions over plain data: `now` is always passed in, nothing here reads a clock or does I/O.

The send date is `sent_at` when the user gives it; otherwise the first day with activity in the
data; while neither is known, the day of the first pull that found nothing (the send cannot have
happened before it, or that pull would have shown it). The window is taken to close at the start
of the send date + 14 days in the workspace time zone, or `sent_at` + 14 days when the exact time
is known: the earliest Braze could delete it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from braze_sends.settings import MAX_SERIES_LENGTH, RETENTION_DAYS

Status = Literal["new", "open", "final", "failed", "expired"]
DONE: frozenset[str] = frozenset({"final", "expired"})

RETENTION = timedelta(days=RETENTION_DAYS)
FIRST_RETRY = timedelta(hours=1)
MAX_RETRY = timedelta(hours=24)


@dataclass(frozen=True)
class SendRecord:
    """What the pipeline knows of one pair (stored in pipeline state, mirrored in `sends`).

    Datetimes are aware; dates are in the workspace time zone.
    """

    campaign_id: str
    send_id: str
    registered_at: datetime
    status: Status = "new"
    sent_at: datetime | None = None  # given by the user
    sent_date: date | None = None  # given, inferred from the data, or assumed
    sent_date_source: Literal["sent_at", "data", "assumed"] | None = None
    last_attempt_at: datetime | None = None
    last_pulled_at: datetime | None = None  # last successful pull
    first_captured_at: datetime | None = None
    final_at: datetime | None = None
    loaded_from: date | None = None
    loaded_to: date | None = None
    captured_days: tuple[date, ...] = ()  # days stored with non-zero numbers
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0  # consecutive permanent failures
    next_retry_at: datetime | None = None
    requests: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.campaign_id, self.send_id)

    @property
    def captured(self) -> bool:
        return bool(self.captured_days)

    @property
    def days_loaded(self) -> int:
        if self.loaded_from is None or self.loaded_to is None:
            return 0
        return (self.loaded_to - self.loaded_from).days + 1

    def to_state(self) -> dict[str, Any]:
        """A JSON-safe dict without empty fields (pipeline state stays small at 10,000+ sends)."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name in ("campaign_id", "send_id") or value in (None, (), 0):
                continue
            if isinstance(value, (date, datetime)):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [d.isoformat() for d in value]
            out[name] = value
        return out

    @classmethod
    def from_state(cls, campaign_id: str, send_id: str, data: dict[str, Any]) -> SendRecord:
        values: dict[str, Any] = {"campaign_id": campaign_id, "send_id": send_id}
        for name, value in data.items():
            kind = _FIELD_KINDS.get(name)
            if kind is None:
                continue  # a field of a newer version: ignore
            if kind is datetime:
                value = datetime.fromisoformat(value)
            elif kind is date:
                value = date.fromisoformat(value)
            elif kind is tuple:
                value = tuple(date.fromisoformat(v) for v in value)
            values[name] = value
        return cls(**values)


_FIELD_KINDS: dict[str, type] = {
    "registered_at": datetime,
    "status": str,
    "sent_at": datetime,
    "sent_date": date,
    "sent_date_source": str,
    "last_attempt_at": datetime,
    "last_pulled_at": datetime,
    "first_captured_at": datetime,
    "final_at": datetime,
    "loaded_from": date,
    "loaded_to": date,
    "captured_days": tuple,
    "last_error": str,
    "last_error_at": datetime,
    "failures": int,
    "next_retry_at": datetime,
    "requests": int,
}


@dataclass(frozen=True)
class Window:
    """One request: `length` days ending on `ending_at`'s date (an explicit end of day)."""

    length: int
    ending_at: datetime

    @property
    def first_day(self) -> date:
        return self.ending_at.date() - timedelta(days=self.length - 1)


@dataclass(frozen=True)
class Outcome:
    """What one successful response means for the warehouse and the record."""

    record: SendRecord
    keep_days: frozenset[date]  # the response's days to write; others would erase stored data
    retention_signal: bool = False
    withheld_days: tuple[date, ...] = field(default=())


def register(
    campaign_id: str,
    send_id: str,
    *,
    now: datetime,
    sent_at: datetime | date | None,
    tz: ZoneInfo,
) -> SendRecord:
    """A new record for a pair seen for the first time."""
    record = SendRecord(campaign_id=campaign_id, send_id=send_id, registered_at=now)
    return with_sent_at(record, sent_at, tz) if sent_at else record


def with_sent_at(record: SendRecord, sent_at: datetime | date, tz: ZoneInfo) -> SendRecord:
    """The user told us when the pair was sent: that wins over inferred or assumed dates.

    A plain date (no time of day) fixes the send date; the close is then taken at its start.
    """
    if isinstance(sent_at, datetime):
        return replace(
            record,
            sent_at=sent_at,
            sent_date=sent_at.astimezone(tz).date(),
            sent_date_source="sent_at",
        )
    return replace(record, sent_at=None, sent_date=sent_at, sent_date_source="sent_at")


def closes_at(record: SendRecord, tz: ZoneInfo) -> datetime | None:
    """The earliest moment Braze may delete the send's analytics, if the send date is known."""
    if record.sent_at is not None:
        return record.sent_at + RETENTION
    if record.sent_date is None:
        return None
    return datetime.combine(record.sent_date, time(0), tzinfo=tz) + RETENTION


def today(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def window(record: SendRecord, *, now: datetime, tz: ZoneInfo) -> Window:
    """The days to request: the send's whole window so far, in one request.

    From the send date (or, while it is unknown, the whole 14-day retention) to today, ending at
    23:59:59 today in the workspace time zone.
    """
    day = today(now, tz)
    first = record.sent_date or day - RETENTION
    length = min(max((day - first).days + 1, 1), MAX_SERIES_LENGTH)
    return Window(length=length, ending_at=datetime.combine(day, time(23, 59, 59), tzinfo=tz))


def is_due(record: SendRecord, *, now: datetime, tz: ZoneInfo) -> bool:
    """Whether this run requests the pair.

    Final and expired sends never are. A failed send waits for its retry time, except once its
    window has closed: then it gets one last try before it is declared lost.
    """
    if record.status in DONE:
        return False
    if record.sent_at is not None and now < record.sent_at:
        return False  # not sent yet
    if record.status == "failed" and record.next_retry_at and now < record.next_retry_at:
        close = closes_at(record, tz)
        return close is not None and now >= close
    return True


def priority(record: SendRecord, *, now: datetime, tz: ZoneInfo, horizon: timedelta) -> tuple:
    """Sort key: under a request budget, most urgent first.

    1. sends Braze still holds that were never captured or close within `horizon`, closing first;
    2. sends past their close (one last try before they are declared lost or final);
    3. refreshes, least recently pulled first.
    """
    close = closes_at(record, tz)
    close_key = close.timestamp() if close else float("inf")
    if close is not None and now >= close:
        return (1, close_key, 0.0)
    if not record.captured or (close is not None and close - now <= horizon):
        return (0, close_key, 0.0)
    pulled_key = record.last_pulled_at.timestamp() if record.last_pulled_at else float("-inf")
    return (2, pulled_key, close_key)


def after_response(
    record: SendRecord,
    activity: dict[date, float],
    *,
    now: datetime,
    tz: ZoneInfo,
    final_margin: timedelta,
) -> Outcome:
    """Interpret a successful response.

    Args:
        activity: the response's days with the sum of their numbers (`flatten.day_activity`).
        final_margin: a pull this close to the window's close (or later) makes the send final.

    A day the warehouse holds with non-zero numbers that comes back all zero (or not at all) is a
    retention signal, not a restatement: it is withheld from the load and the send is final.
    """
    active_days = sorted(d for d, total in activity.items() if total)
    record = replace(record, requests=record.requests + 1, last_attempt_at=now)
    if record.sent_date is None and active_days:
        record = replace(record, sent_date=active_days[0], sent_date_source="data")
    elif record.sent_date is None:
        record = replace(record, sent_date=today(now, tz), sent_date_source="assumed")
    elif record.sent_date_source == "assumed" and active_days:
        record = replace(
            record, sent_date=min(active_days[0], record.sent_date), sent_date_source="data"
        )

    captured = set(record.captured_days)
    withheld = tuple(sorted(d for d in captured if not activity.get(d)))
    keep = frozenset(d for d in activity if d not in withheld)
    retention_signal = bool(withheld)

    captured |= set(active_days)
    kept = sorted(keep)
    record = replace(
        record,
        captured_days=tuple(sorted(captured)),
        loaded_from=min(
            filter(None, (record.loaded_from, kept[0] if kept else None)), default=None
        ),
        loaded_to=max(filter(None, (record.loaded_to, kept[-1] if kept else None)), default=None),
        last_pulled_at=now,
        last_error=None,
        last_error_at=None,
        failures=0,
        next_retry_at=None,
    )
    if record.captured and record.first_captured_at is None:
        record = replace(record, first_captured_at=now)

    close = closes_at(record, tz)
    closing = close is not None and now >= close - final_margin
    if record.captured and (retention_signal or closing):
        record = replace(record, status="final", final_at=now)
    elif not record.captured and close is not None and now >= close:
        record = replace(record, status="expired", final_at=now)
    else:
        record = replace(record, status="open" if record.captured else "new")
    return Outcome(record, keep, retention_signal, withheld)


def after_failure(
    record: SendRecord, message: str, *, now: datetime, tz: ZoneInfo, permanent: bool
) -> SendRecord:
    """Record a failed pull.

    A permanent error (400) makes the pair `failed`, retried after 1 h, 2 h, 4 h... (at most
    24 h). After the window's close, an error on a captured send is Braze's retention answer
    (final); on a never-captured one the data is lost (expired). A transient error (retries
    exhausted) leaves the status as it was: the next run asks again.
    """
    record = replace(
        record,
        requests=record.requests + 1,
        last_attempt_at=now,
        last_error=message,
        last_error_at=now,
    )
    close = closes_at(record, tz)
    if close is not None and now >= close:
        status: Status = "final" if record.captured else "expired"
        return replace(record, status=status, final_at=now)
    if not permanent:
        return record
    failures = record.failures + 1
    wait = min(FIRST_RETRY * 2 ** (failures - 1), MAX_RETRY)
    return replace(record, status="failed", failures=failures, next_retry_at=now + wait)


def at_risk(record: SendRecord, *, now: datetime, tz: ZoneInfo, horizon: timedelta) -> bool:
    """Closes within `horizon` without a successful pull in the last 24 hours, or expired."""
    if record.status == "expired":
        return True
    if record.status in DONE:
        return False
    close = closes_at(record, tz)
    if close is None or close - now > horizon:
        return False
    return record.last_pulled_at is None or now - record.last_pulled_at > timedelta(hours=24)

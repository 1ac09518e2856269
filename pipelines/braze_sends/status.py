"""`braze-sends status`: where every send stands, and the alarms (pure: records and `now` in).

A send is **at risk** when its window closes within the horizon (default 48 h) and it has no
successful pull in the last 24 hours. A send that **expired** (its window closed before any
capture: the data is lost) raises the alarm for `expired_alarm_days` (default 7) after it was
declared lost, so monitoring sees it without paging forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from braze_sends import lifecycle, registry
from braze_sends.lifecycle import SendRecord
from braze_sends.report import table

ORDER = ("new", "open", "failed", "final", "expired")


@dataclass
class StatusReport:
    """Counts, the alarms and the live sends, at `now`."""

    now: datetime
    counts: dict[str, int]
    at_risk: list[SendRecord] = field(default_factory=list)
    recently_expired: list[SendRecord] = field(default_factory=list)
    live: list[SendRecord] = field(default_factory=list)  # new, open, failed: closing first
    days_loaded: int = 0
    requests: int = 0
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    @property
    def alarm(self) -> bool:
        return bool(self.at_risk or self.recently_expired)


def build(
    records: Iterable[SendRecord],
    *,
    now: datetime,
    tz: ZoneInfo,
    horizon: timedelta = timedelta(hours=48),
    expired_alarm: timedelta = timedelta(days=7),
    archived: Mapping[str, int] | None = None,
) -> StatusReport:
    """Args:
    archived: the totals of the sends archived (`registry.archived_totals`): counted, never
        listed (finished more than 30 days ago)."""
    records = list(records)
    archived = archived or {}
    counts = registry.status_counts((r.status for r in records), archived)
    report = StatusReport(now=now, counts=counts, tz=tz)
    report.days_loaded = archived.get("days_loaded", 0)
    report.requests = archived.get("requests", 0)
    for record in records:
        report.days_loaded += record.days_loaded
        report.requests += record.requests
        if record.status == "expired":
            if record.final_at is None or now - record.final_at <= expired_alarm:
                report.recently_expired.append(record)
        elif lifecycle.at_risk(record, now=now, tz=tz, horizon=horizon):
            report.at_risk.append(record)
        if record.status not in lifecycle.DONE:
            report.live.append(record)
    report.live.sort(key=lambda r: _close_key(r, tz))
    report.at_risk.sort(key=lambda r: _close_key(r, tz))
    return report


MAX_ALARM_LINES = 20


def warnings(report: StatusReport, *, limit: int = MAX_ALARM_LINES) -> list[str]:
    """One line per alarm (at most `limit`, then a count), for `run` and `status` alike."""
    lines = []
    for record in report.at_risk:
        close = lifecycle.closes_at(record, report.tz)
        lines.append(
            f"AT RISK {record.campaign_id}/{record.send_id}: window closes in "
            f"{_duration(close - report.now)} ({close.isoformat()}), last successful pull "
            f"{_ago(record.last_pulled_at, report.now)}"
            + (f"; last error: {record.last_error}" if record.last_error else "")
        )
    for record in report.recently_expired:
        lines.append(
            f"EXPIRED {record.campaign_id}/{record.send_id}: its window closed before any "
            "capture; Braze no longer holds its analytics (lost)"
            + (f"; last error: {record.last_error}" if record.last_error else "")
        )
    if len(lines) > limit:
        rest = len(lines) - limit
        lines = [*lines[:limit], f"... and {rest:,} more (braze-sends status --json lists all)"]
    return lines


def render(report: StatusReport, *, limit: int = 50) -> str:
    """The text `braze-sends status` prints."""
    counts = ", ".join(f"{s} {report.counts.get(s, 0):,}" for s in ORDER)
    lines = [
        f"sends: {sum(report.counts.values()):,} ({counts})",
        f"days loaded: {report.days_loaded:,}; requests made: {report.requests:,}",
    ]
    alarms = warnings(report)
    total = len(report.at_risk) + len(report.recently_expired)
    lines.append(
        f"alarms: {len(report.at_risk):,} at risk, {len(report.recently_expired):,} expired "
        "uncaptured"
        if total
        else "alarms: none"
    )
    lines.extend(f"  {line}" for line in alarms)
    if report.live:
        shown = min(limit, len(report.live))
        lines += ["", f"open windows ({shown} of {len(report.live)}, closing first):"]
        headers = [
            "campaign_id",
            "send_id",
            "status",
            "sent",
            "closes in",
            "last pull",
            "days",
            "last error",
        ]
        lines.append(table(headers, [_row(r, report) for r in report.live[:limit]]))
    return "\n".join(lines)


def to_json(report: StatusReport) -> dict[str, Any]:
    """The `status --json` document."""

    def send(record: SendRecord) -> dict[str, Any]:
        close = lifecycle.closes_at(record, report.tz)
        return {
            "campaign_id": record.campaign_id,
            "send_id": record.send_id,
            "status": record.status,
            "sent_date": record.sent_date.isoformat() if record.sent_date else None,
            "window_closes_at": close.isoformat() if close else None,
            "seconds_to_close": (close - report.now).total_seconds() if close else None,
            "last_pulled_at": record.last_pulled_at.isoformat() if record.last_pulled_at else None,
            "days_loaded": record.days_loaded,
            "last_error": record.last_error,
        }

    return {
        "now": report.now.isoformat(),
        "counts": {s: report.counts.get(s, 0) for s in ORDER},
        "days_loaded": report.days_loaded,
        "requests": report.requests,
        "alarm": report.alarm,
        "at_risk": [send(r) for r in report.at_risk],
        "recently_expired": [send(r) for r in report.recently_expired],
        "open": [send(r) for r in report.live],
    }


def _row(record: SendRecord, report: StatusReport) -> list[Any]:
    close = lifecycle.closes_at(record, report.tz)
    return [
        record.campaign_id,
        record.send_id,
        record.status,
        record.sent_date.isoformat() if record.sent_date else "?",
        _duration(close - report.now) if close else "?",
        _ago(record.last_pulled_at, report.now),
        record.days_loaded,
        (record.last_error or "")[:60],
    ]


def _close_key(record: SendRecord, tz: ZoneInfo) -> float:
    close = lifecycle.closes_at(record, tz)
    return close.timestamp() if close else float("inf")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "closed " + _duration(-delta) + " ago"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


def _ago(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else _duration(now - moment) + " ago"

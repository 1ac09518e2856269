"""The status report: counts, alarms and their rendering (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from braze_sends import status
from braze_sends.lifecycle import SendRecord

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
UTCZ = ZoneInfo("UTC")


def rec(send_id, **fields):
    return SendRecord(
        campaign_id="c", send_id=send_id, registered_at=NOW - timedelta(days=20), **fields
    )


RECORDS = [
    rec(
        "closing",
        status="open",
        sent_date=date(2026, 11, 7),
        captured_days=(date(2026, 11, 7),),
        last_pulled_at=NOW - timedelta(hours=30),
        loaded_from=date(2026, 11, 7),
        loaded_to=date(2026, 11, 19),
    ),
    rec(
        "fresh",
        status="open",
        sent_date=date(2026, 11, 7),
        captured_days=(date(2026, 11, 7),),
        last_pulled_at=NOW - timedelta(hours=2),
    ),
    rec("far", status="new", sent_date=date(2026, 11, 18)),
    rec(
        "lost",
        status="expired",
        sent_date=date(2026, 11, 1),
        final_at=NOW - timedelta(days=1),
        last_error="HTTP 503: down",
    ),
    rec(
        "old_loss", status="expired", sent_date=date(2026, 10, 1), final_at=NOW - timedelta(days=30)
    ),
    rec(
        "done",
        status="final",
        sent_date=date(2026, 11, 1),
        loaded_from=date(2026, 11, 1),
        loaded_to=date(2026, 11, 15),
        requests=9,
    ),
]


def test_alarms_are_sends_closing_soon_without_a_recent_pull_and_recent_expiries():
    report = status.build(RECORDS, now=NOW, tz=UTCZ)
    assert [r.send_id for r in report.at_risk] == ["closing"]
    assert [r.send_id for r in report.recently_expired] == ["lost"]  # old losses stop paging
    assert report.alarm
    assert report.counts == {"open": 2, "new": 1, "expired": 2, "final": 1}
    assert [r.send_id for r in report.live] == ["closing", "fresh", "far"]  # closing first
    assert report.days_loaded == 13 + 15 and report.requests == 9


def test_no_alarm_when_everything_is_pulled_recently():
    report = status.build([RECORDS[1], RECORDS[2], RECORDS[5]], now=NOW, tz=UTCZ)
    assert not report.alarm and status.warnings(report) == []


def test_rendered_text_names_each_alarm_and_the_open_windows():
    text = status.render(status.build(RECORDS, now=NOW, tz=UTCZ))
    assert "alarms: 1 at risk, 1 expired uncaptured" in text
    assert "AT RISK c/closing: window closes in 0h 0m" not in text
    assert "AT RISK c/closing: window closes in 12h 0m (2026-11-21T00:00:00+00:00)" in text
    assert "last successful pull 1d 6h ago" in text
    assert "EXPIRED c/lost" in text and "HTTP 503: down" in text
    assert "open windows (3 of 3, closing first)" in text


def test_json_lists_everything_with_seconds_to_close():
    doc = status.to_json(status.build(RECORDS, now=NOW, tz=UTCZ))
    assert doc["alarm"] is True
    assert doc["at_risk"][0]["seconds_to_close"] == 12 * 3600
    assert doc["counts"]["failed"] == 0 and len(doc["open"]) == 3


def test_alarm_lines_are_capped_with_a_count():
    many = [
        rec(f"s{i}", status="expired", sent_date=date(2026, 11, 1), final_at=NOW) for i in range(30)
    ]
    lines = status.warnings(status.build(many, now=NOW, tz=UTCZ))
    assert len(lines) == 21 and lines[-1].startswith("... and 10 more")

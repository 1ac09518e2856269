"""The window lifecycle: windows, due sends, priorities, retention signals (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from braze_sends import SendPair, lifecycle, registry
from braze_sends.errors import DestinationError
from braze_sends.lifecycle import SendRecord

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)
MARGIN = timedelta(hours=6)


def record(**fields) -> SendRecord:
    return SendRecord(campaign_id="c", send_id="s", registered_at=T0, **fields)


def respond(rec, activity, now, tz=UTC):
    return lifecycle.after_response(rec, activity, now=now, tz=tz, final_margin=MARGIN)


def test_window_runs_from_the_send_date_to_the_end_of_today_in_the_workspace_zone():
    rec = lifecycle.register("c", "s", now=T0, sent_at=date(2026, 11, 18), tz=NY)
    win = lifecycle.window(rec, now=T0, tz=NY)
    assert win.length == 3
    assert win.ending_at.isoformat() == "2026-11-20T23:59:59-05:00"
    assert win.first_day == date(2026, 11, 18)


def test_unknown_send_date_requests_the_whole_retention():
    win = lifecycle.window(record(), now=T0, tz=UTC)
    assert win.length == 15 and win.first_day == date(2026, 11, 6)


def test_window_length_is_capped_at_100_days():
    rec = record(sent_date=date(2026, 1, 1))
    assert lifecycle.window(rec, now=T0, tz=UTC).length == 100


def test_close_is_sent_at_plus_14_days_or_the_start_of_the_send_date_plus_14():
    exact = lifecycle.register("c", "s", now=T0, sent_at=T0 - timedelta(hours=5), tz=UTC)
    assert lifecycle.closes_at(exact, UTC) == T0 + timedelta(days=14, hours=-5)
    dated = lifecycle.register("c", "s", now=T0, sent_at=date(2026, 11, 20), tz=NY)
    assert lifecycle.closes_at(dated, NY).isoformat() == "2026-12-04T00:00:00-05:00"
    assert lifecycle.closes_at(record(), UTC) is None


def test_send_date_is_inferred_from_the_first_active_day():
    outcome = respond(
        record(), {date(2026, 11, 17): 0, date(2026, 11, 18): 5, date(2026, 11, 19): 2}, T0
    )
    assert outcome.record.sent_date == date(2026, 11, 18)
    assert outcome.record.sent_date_source == "data"
    assert outcome.record.status == "open"
    assert outcome.record.captured_days == (date(2026, 11, 18), date(2026, 11, 19))


def test_no_activity_yet_assumes_the_send_is_not_earlier_than_today():
    outcome = respond(record(), {date(2026, 11, 19): 0, date(2026, 11, 20): 0}, T0)
    assert outcome.record.status == "new"
    assert outcome.record.sent_date == date(2026, 11, 20)
    assert outcome.record.sent_date_source == "assumed"
    later = respond(outcome.record, {date(2026, 11, 21): 3}, T0 + timedelta(days=1))
    assert later.record.sent_date == date(2026, 11, 20)  # never later than the assumption
    assert later.record.sent_date_source == "data"


def test_a_pull_close_to_the_window_close_makes_the_send_final():
    rec = lifecycle.register("c", "s", now=T0, sent_at=T0, tz=UTC)
    days = {date(2026, 11, 20): 10}
    early = respond(rec, days, T0 + timedelta(days=13))
    assert early.record.status == "open"
    late = respond(early.record, days, T0 + timedelta(days=14) - MARGIN)
    assert late.record.status == "final" and late.record.final_at is not None
    assert not lifecycle.is_due(late.record, now=T0 + timedelta(days=14), tz=UTC)


def test_zeros_over_stored_numbers_are_withheld_and_make_the_send_final():
    rec = respond(
        record(sent_date=date(2026, 11, 18)), {date(2026, 11, 18): 9, date(2026, 11, 19): 4}, T0
    ).record
    outcome = respond(
        rec,
        {date(2026, 11, 18): 0, date(2026, 11, 19): 0, date(2026, 11, 20): 0},
        T0 + timedelta(days=1),
    )
    assert outcome.retention_signal
    assert outcome.withheld_days == (date(2026, 11, 18), date(2026, 11, 19))
    assert outcome.keep_days == {date(2026, 11, 20)}
    assert outcome.record.status == "final"
    assert outcome.record.captured_days == rec.captured_days


def test_an_empty_series_over_stored_numbers_is_a_retention_signal_too():
    rec = respond(record(sent_date=date(2026, 11, 18)), {date(2026, 11, 18): 9}, T0).record
    outcome = respond(rec, {}, T0 + timedelta(days=1))
    assert outcome.retention_signal and outcome.record.status == "final"
    assert outcome.keep_days == frozenset()


def test_only_the_oldest_days_zeroed_keeps_the_newer_days():
    rec = respond(
        record(sent_date=date(2026, 11, 18)), {date(2026, 11, 18): 9, date(2026, 11, 19): 4}, T0
    ).record
    outcome = respond(rec, {date(2026, 11, 18): 0, date(2026, 11, 19): 6}, T0 + timedelta(days=1))
    assert outcome.keep_days == {date(2026, 11, 19)}
    assert outcome.record.status == "final"


def test_permanent_failures_back_off_and_transient_ones_keep_the_status():
    rec = record()
    failed = lifecycle.after_failure(rec, "HTTP 400", now=T0, tz=UTC, permanent=True)
    assert failed.status == "failed" and failed.next_retry_at == T0 + timedelta(hours=1)
    assert not lifecycle.is_due(failed, now=T0 + timedelta(minutes=59), tz=UTC)
    assert lifecycle.is_due(failed, now=T0 + timedelta(hours=1), tz=UTC)
    again = lifecycle.after_failure(failed, "HTTP 400", now=T0, tz=UTC, permanent=True)
    assert again.next_retry_at == T0 + timedelta(hours=2)
    transient = lifecycle.after_failure(rec, "HTTP 503", now=T0, tz=UTC, permanent=False)
    assert transient.status == "new" and transient.last_error == "HTTP 503"


def test_retry_interval_is_capped_at_a_day():
    rec = record(failures=10, status="failed")
    failed = lifecycle.after_failure(rec, "HTTP 400", now=T0, tz=UTC, permanent=True)
    assert failed.next_retry_at == T0 + timedelta(hours=24)


def test_error_after_the_close_is_final_for_captured_and_expired_for_uncaptured():
    captured = record(sent_date=date(2026, 11, 1), captured_days=(date(2026, 11, 1),))
    after = T0 + timedelta(days=1)
    assert (
        lifecycle.after_failure(captured, "x", now=after, tz=UTC, permanent=True).status == "final"
    )
    uncaptured = record(sent_date=date(2026, 11, 1))
    assert (
        lifecycle.after_failure(uncaptured, "x", now=after, tz=UTC, permanent=True).status
        == "expired"
    )


def test_a_never_captured_send_past_its_close_gets_one_last_try_then_expires():
    rec = record(sent_date=date(2026, 11, 1))
    after_close = datetime(2026, 11, 15, 0, tzinfo=timezone.utc)
    assert lifecycle.is_due(rec, now=after_close, tz=UTC)
    expired = respond(rec, {date(2026, 11, 1): 0}, after_close).record
    assert expired.status == "expired"
    assert not lifecycle.is_due(expired, now=after_close, tz=UTC)
    assert lifecycle.at_risk(expired, now=T0, tz=UTC, horizon=timedelta(hours=48))
    rescued = respond(rec, {date(2026, 11, 1): 5}, after_close).record  # Braze still had it
    assert rescued.status == "final" and rescued.captured


def test_a_failed_send_waiting_for_its_retry_gets_a_last_try_at_its_close():
    rec = record(
        sent_date=date(2026, 11, 6),
        status="failed",
        failures=3,
        next_retry_at=datetime(2026, 11, 21, tzinfo=timezone.utc),
    )
    assert not lifecycle.is_due(rec, now=datetime(2026, 11, 19, 23, tzinfo=timezone.utc), tz=UTC)
    assert lifecycle.is_due(rec, now=datetime(2026, 11, 20, 0, tzinfo=timezone.utc), tz=UTC)


def test_at_risk_means_closing_soon_without_a_recent_pull():
    horizon = timedelta(hours=48)
    closing = record(sent_date=date(2026, 11, 8), status="open", captured_days=(date(2026, 11, 8),))
    assert lifecycle.at_risk(closing, now=T0, tz=UTC, horizon=horizon)
    pulled = record(
        sent_date=date(2026, 11, 8), status="open", last_pulled_at=T0 - timedelta(hours=2)
    )
    assert not lifecycle.at_risk(pulled, now=T0, tz=UTC, horizon=horizon)
    far = record(sent_date=date(2026, 11, 19), status="open")
    assert not lifecycle.at_risk(far, now=T0, tz=UTC, horizon=horizon)


def test_sends_not_sent_yet_are_not_due():
    rec = lifecycle.register("c", "s", now=T0, sent_at=T0 + timedelta(hours=1), tz=UTC)
    assert not lifecycle.is_due(rec, now=T0, tz=UTC)
    assert lifecycle.is_due(rec, now=T0 + timedelta(hours=1), tz=UTC)


def test_priority_puts_never_captured_and_closing_sends_first_and_lost_causes_after():
    horizon = timedelta(hours=48)
    recent = record(
        sent_date=date(2026, 11, 19),
        captured_days=(date(2026, 11, 19),),
        last_pulled_at=T0 - timedelta(hours=1),
    )
    stale = record(
        sent_date=date(2026, 11, 18),
        captured_days=(date(2026, 11, 18),),
        last_pulled_at=T0 - timedelta(days=2),
    )
    closing = record(
        sent_date=date(2026, 11, 7),
        captured_days=(date(2026, 11, 7),),
        last_pulled_at=T0 - timedelta(hours=1),
    )
    never = record(sent_date=date(2026, 11, 15))
    past_close = record(sent_date=date(2026, 11, 1))
    order = sorted(
        [recent, stale, past_close, closing, never],
        key=lambda r: lifecycle.priority(r, now=T0, tz=UTC, horizon=horizon),
    )
    assert order == [closing, never, past_close, stale, recent]


def test_state_round_trip_is_lossless_and_compact():
    rec = respond(
        lifecycle.register("c", "s", now=T0, sent_at=T0, tz=UTC), {date(2026, 11, 20): 3}, T0
    ).record
    data = rec.to_state()
    assert "failures" not in data and "last_error" not in data
    assert SendRecord.from_state("c", "s", data) == rec


def test_registry_state_is_one_compressed_text_that_reads_back_every_record():
    records = {}
    for i in range(10_000):
        rec = lifecycle.register(f"campaign-{i // 20:04d}", f"send-{i:05d}", now=T0, sent_at=T0,
                                 tz=UTC)  # fmt: skip
        rec = respond(rec, {date(2026, 11, 20) - timedelta(days=d): 3 for d in range(5)}, T0)
        records[rec.record.key] = rec.record
    state: dict = {}
    registry.save_records(state, records.values())
    assert list(state) == [registry.STATE_KEY] and isinstance(state[registry.STATE_KEY], str)
    assert registry.load_records(state) == records
    plain = len(json.dumps({k[1]: r.to_state() for k, r in records.items()}))
    # dlt holds ~17x the state's size in memory at each step of every load: keep it small.
    assert len(state[registry.STATE_KEY]) < plain / 5


def test_registry_reads_the_plain_layout_of_earlier_versions_and_replaces_it():
    old = respond(lifecycle.register("c", "s1", now=T0, sent_at=T0, tz=UTC), {}, T0).record
    new = lifecycle.register("c", "s2", now=T0, sent_at=T0, tz=UTC)
    state = {"sends": {"c": {"s1": old.to_state()}}}
    records = registry.load_records(state)
    assert records == {("c", "s1"): old}
    records[new.key] = new
    registry.save_records(state, records.values())
    assert "sends" not in state
    assert registry.load_records(state) == {("c", "s1"): old, ("c", "s2"): new}


def finished(campaign_id, send_id, final_at, status="final"):
    rec = lifecycle.register(campaign_id, send_id, now=T0, sent_at=T0, tz=UTC)
    return replace(
        rec,
        status=status,
        final_at=final_at,
        loaded_from=date(2026, 11, 20),
        loaded_to=date(2026, 12, 3),
        captured_days=(date(2026, 11, 20),) if status == "final" else (),
        requests=4,
    )


def test_sends_finished_for_30_days_move_to_the_archive_and_stay_known():
    now = T0 + timedelta(days=60)
    old_final = finished("c1", "old_final", now - timedelta(days=31))
    old_expired = finished("c2", "old_expired", now - timedelta(days=45), status="expired")
    recent = finished("c1", "recent", now - timedelta(days=29))
    live = lifecycle.register("c3", "live", now=now, sent_at=now, tz=UTC)
    state: dict = {}
    registry.save_records(state, [old_final, old_expired, recent, live])  # no `now`: kept
    assert set(registry.load_records(state)) == {
        ("c1", "old_final"), ("c2", "old_expired"), ("c1", "recent"), ("c3", "live")
    }  # fmt: skip
    moved = registry.save_records(state, [], now=now)
    assert moved == {("c1", "old_final"), ("c2", "old_expired")}
    assert registry.load_records(state) == {recent.key: recent, live.key: live}
    records = registry.load_records(state)
    given = [*moved, recent.key, live.key, ("c1", "new"), ("c9", "new")]
    # Not live, of a campaign with archived sends: the warehouse's `sends` table is asked.
    assert registry.archive_candidates(state, given, records) == {*moved, ("c1", "new")}
    assert registry.archived_campaigns(state) == {"c1", "c2"}
    assert registry.archived_count(state) == 2
    assert registry.archived_totals(state) == {
        "final": 1, "expired": 1, "days_loaded": 28, "requests": 8
    }  # fmt: skip
    # Listed again (a sends file that keeps old pairs): known, not registered again.
    records = registry.load_records(state)
    pairs = [SendPair("c1", "old_final", T0), SendPair("c2", "old_expired", None),
             SendPair("c4", "new", now)]  # fmt: skip
    added = registry.register(records, pairs, now=now, tz=UTC, archived=moved)
    assert added == 1 and set(records) == {recent.key, live.key, ("c4", "new")}
    # Later saves keep the archive and add to it.
    later = now + timedelta(days=2)
    assert registry.save_records(state, records.values(), now=later) == {recent.key}
    assert registry.archived_count(state) == 3
    assert registry.archived_totals(state)["final"] == 2


def test_pipeline_state_does_not_grow_with_archived_sends():
    """Every chunk of every run reads the registry, and dlt holds ~17x the whole pipeline state at
    every step of a load: years of finished sends must weigh on neither."""
    now = T0 + timedelta(days=60)
    live = [lifecycle.register("c", f"live-{i}", now=now, sent_at=now, tz=UTC) for i in range(100)]
    small: dict = {}
    registry.save_records(small, live, now=now)
    big: dict = {}
    old = (finished(f"c-{i % 100}", f"s-{i}", now - timedelta(days=40)) for i in range(50_000))
    registry.save_records(big, [*old, *live], now=now)
    assert registry.archived_count(big) == 50_000
    assert registry.load_records(big) == registry.load_records(small)
    assert len(big[registry.STATE_KEY]) == len(small[registry.STATE_KEY])
    # What is left of 50,000 sends: their 100 campaigns and the totals.
    assert registry.ARCHIVE_KEY not in big
    assert len(json.dumps(big)) - len(json.dumps(small)) < 100 * 12 + 200


def test_an_earlier_versions_archive_text_leaves_state_once_the_warehouse_answered():
    lines = "c1\ts1\tfinal\t14\t15\nc1\ts2\texpired\t0\t3\nc2\ts3\tfinal\t9\t12\n"
    state = {registry.ARCHIVE_KEY: registry._deflate(lines.encode()), "archived": {"final": 2}}
    registry.save_records(state, [], now=T0)  # a save alone keeps it
    assert registry.ARCHIVE_KEY in state

    def unreachable(pairs):
        raise DestinationError("no answer")

    with pytest.raises(DestinationError):
        registry.retire_legacy_archive(state, unreachable)
    assert registry.ARCHIVE_KEY in state  # no answer: kept
    asked = []

    def answers(pairs):
        asked.append(pairs)
        return {("c1", "s1"), ("c2", "s3")}

    assert registry.retire_legacy_archive(state, answers) == {("c1", "s2")}
    assert asked == [{("c1", "s1"), ("c1", "s2"), ("c2", "s3")}]
    assert registry.ARCHIVE_KEY not in state and registry.archived_count(state) == 2
    assert registry.retire_legacy_archive(state, unreachable) == set()  # gone: never asked again


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.integers(0, 14), st.integers(0, 5)), min_size=1, max_size=8))
def test_property_a_captured_day_is_never_replaced_by_zeros(pulls):
    """Whatever sequence of responses arrives, a day once stored non-zero is never written zero."""
    rec = record(sent_date=date(2026, 11, 1))
    stored: dict[date, float] = {}
    for i, pull in enumerate(pulls):
        activity = {date(2026, 11, 1) + timedelta(days=d): float(v) for d, v in pull.items()}
        outcome = respond(rec, activity, T0 + timedelta(hours=i))
        for d in outcome.keep_days:
            assert not (stored.get(d) and not activity[d])
            stored[d] = activity[d]
        rec = outcome.record
    assert all(stored.get(d) for d in rec.captured_days)

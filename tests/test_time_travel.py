"""Thirty simulated days against the sandbox's clock: nothing lost, nothing stale, no waste.

Every day new sends are registered (some with `sent_at`, some without); one run a day at 03:00
UTC, with some days skipped (up to 3 in a row) and some runs hit by 5xx storms. The simulation
goes on without new sends until every window has closed. Then every send's stored series must
equal the sandbox's final truth, every final send must never have been requested again, and each
run must have requested exactly the sends that were due (open, new, or failed and due).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from braze_sends import SendPair, lifecycle, registry
from braze_sends.sandbox import Catalog, Faults, SandboxClock, SandboxServer
from tests.conftest import Loader

START = datetime(2026, 10, 1, 3, 0, tzinfo=timezone.utc)
NEW_SENDS_DAYS = 30
SKIPPED = {4, 5, 6, 12, 19, 20, 27, 33, 34, 35}  # at most 3 in a row
STORMS = {8, 15, 22, 30}
IDENTITY = {
    "campaign_id",
    "send_id",
    "date",
    "channel",
    "variation_name",
    "variation_api_id",
    "pulled_at",
    "_dlt_load_id",
    "_dlt_id",
}


def truth_rows(catalog: Catalog, campaign_id: str, send_id: str):
    """{(date, channel, variation_name): {metric: value}} of the sandbox's final truth."""
    rows = {}
    for day in catalog.final_series(campaign_id, send_id):
        for channel, variations in day["messages"].items():
            for variation in variations:
                metrics = {
                    k: v
                    for k, v in variation.items()
                    if k not in ("variation_name", "variation_api_id")
                }
                rows[(day["time"], channel, variation["variation_name"])] = metrics
    return rows


@pytest.mark.timeout(900)
def test_thirty_days_of_daily_runs_lose_nothing_and_request_only_due_sends(tmp_path):
    catalog = Catalog.generate(
        21, start=START.date() - timedelta(days=3), days=NEW_SENDS_DAYS + 3, sends=90, campaigns=6
    )
    clock = SandboxClock(START, frozen=True)
    registered: set[tuple[str, str]] = set()
    requested_after_final: list = []
    final_since: dict[tuple[str, str], int] = {}
    runs = requests = storm_failures = 0
    with SandboxServer(catalog, clock=clock) as server:
        loader = Loader(tmp_path, server)
        pipeline = loader.pipeline()
        last_day = NEW_SENDS_DAYS + 18
        new_pairs: list[SendPair] = []  # given to the next run that happens
        for day in range(last_day + 1):
            now = START + timedelta(days=day)
            clock.set(now)
            for index, (campaign_id, send_id, sent_at) in enumerate(catalog.pairs()):
                if (
                    sent_at <= now
                    and day <= NEW_SENDS_DAYS
                    and (campaign_id, send_id) not in registered
                ):
                    registered.add((campaign_id, send_id))
                    new_pairs.append(SendPair(campaign_id, send_id, sent_at if index % 3 else None))
            if day in SKIPPED:
                continue
            server.faults = Faults(seed=day, error_rate=0.35) if day in STORMS else Faults()
            before = registry.load_records(pipeline.state.get("sources", {}).get("braze_sends", {}))
            expected_due = {
                key for key, r in before.items() if lifecycle.is_due(r, now=now, tz=timezone.utc)
            }
            expected_due |= {
                (p.campaign_id, p.send_id)
                for p in new_pairs
                if (p.campaign_id, p.send_id) not in before
            }
            seen_before = Counter(server.stats.by_pair)
            result = loader.run(
                pipeline, pairs=new_pairs, now=now, backoff_seconds=0.01, max_attempts=3
            )
            new_pairs = []
            seen = Counter(server.stats.by_pair) - seen_before
            runs += 1
            requests += result.summary["requests"]
            storm_failures += result.summary["failed"]
            assert set(seen) == expected_due, f"day {day}"
            assert result.summary["due"] == len(expected_due)
            for key in seen:
                if key in final_since:
                    requested_after_final.append((day, key))
            after = registry.load_records(pipeline.state["sources"]["braze_sends"])
            for key, record in after.items():
                if record.status == "final":
                    final_since.setdefault(key, day)

        state = pipeline.state["sources"]["braze_sends"]
        statuses = Counter(r.status for r in registry.load_records(state).values())
        archived = registry.archived_totals(state)
        statuses.update(
            {status: archived[status] for status in ("final", "expired") if status in archived}
        )
        assert statuses == {"final": len(registered)}, statuses
        assert registry.archived_count(state) > 0  # the first days' sends: finished a month ago
        assert requested_after_final == []

        lost_days = stale = compared = 0
        for campaign_id, send_id in registered:
            truth = truth_rows(catalog, campaign_id, send_id)
            cols = [
                c
                for c, *_ in loader.sql("DESCRIBE braze.send_variation_daily")
                if c not in IDENTITY
            ]
            stored = {
                (d.isoformat(), ch, name): dict(zip(cols, values))
                for d, ch, name, *values in loader.sql(
                    f"SELECT date, channel, variation_name, {', '.join(cols)} FROM braze.send_variation_daily "
                    "WHERE campaign_id = ? AND send_id = ?",
                    campaign_id,
                    send_id,
                )
            }
            for key, metrics in truth.items():
                if not any(metrics.values()):
                    continue  # a zero day: stored as zeros, or not at all
                compared += 1
                if key not in stored:
                    lost_days += 1
                elif any((stored[key].get(m) or 0) != pytest.approx(v) for m, v in metrics.items()):
                    stale += 1
    print(
        f"time travel: {len(registered)} sends, {runs} runs, {requests} requests, "
        f"{storm_failures} pulls failed in storms, {compared} non-zero variation-days compared, "
        f"lost {lost_days}, stale {stale}"
    )
    assert storm_failures > 0  # the storms did knock pulls out, and later runs made up for it
    assert compared > 1000
    assert lost_days == 0 and stale == 0

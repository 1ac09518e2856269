"""The pipeline end to end: real HTTP to the sandbox on loopback, real DuckDB files."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dlt
import pytest

from braze_sends import SendPair, runner
from braze_sends.sandbox import CHANNELS, Catalog, Faults, RateLimit
from braze_sends.settings import DUCKDB_DEFAULTS
from tests.conftest import NOW

DLT_COLUMNS = {"_dlt_load_id", "_dlt_id"}
VARIATION_IDENTITY = {
    "campaign_id",
    "send_id",
    "date",
    "channel",
    "variation_name",
    "variation_api_id",
    "pulled_at",
    *DLT_COLUMNS,
}
DAILY_IDENTITY = {"campaign_id", "send_id", "date", "pulled_at", *DLT_COLUMNS}


def served(catalog: Catalog, as_of: datetime = NOW, registered_by: datetime = NOW):
    """What the sandbox serves for each registered pair's window (send date .. today): summed per
    channel and metric, and per day-level metric."""
    by_channel: dict[tuple[str, str], float] = defaultdict(float)
    daily: dict[str, float] = defaultdict(float)
    for campaign_id, send_id, sent_at in sent_pairs(catalog, registered_by):
        first = sent_at.astimezone(catalog.tz).date()
        length = (as_of.date() - first).days + 1
        for day in catalog.series(
            campaign_id, send_id, length=length, ending_at_date=as_of.date(), as_of=as_of
        ):
            for channel, variations in day["messages"].items():
                for variation in variations:
                    for key, value in variation.items():
                        if isinstance(value, (int, float)):
                            by_channel[(channel, key)] += value
            for key, value in day.items():
                if isinstance(value, (int, float)):
                    daily[key] += value
    return by_channel, daily


def sent_pairs(catalog: Catalog, as_of: datetime = NOW):
    return [(c, s, at) for c, s, at in catalog.pairs() if at <= as_of]


def columns(loader, table):
    return {name: kind for name, kind, *_ in loader.sql(f"DESCRIBE braze.{table}")}


def stored(loader):
    variation_cols = [
        c for c in columns(loader, "send_variation_daily") if c not in VARIATION_IDENTITY
    ]
    by_channel = {}
    for channel, *sums in loader.sql(
        "SELECT channel, "
        + ", ".join(f"sum({c})" for c in variation_cols)
        + " FROM braze.send_variation_daily GROUP BY channel"
    ):
        for column, total in zip(variation_cols, sums):
            if total is not None:
                by_channel[(channel, column)] = round(total, 6)
    daily_cols = [c for c in columns(loader, "send_daily") if c not in DAILY_IDENTITY]
    totals = loader.sql(
        "SELECT " + ", ".join(f"sum({c})" for c in daily_cols) + " FROM braze.send_daily"
    )[0]
    return by_channel, {c: round(t, 6) for c, t in zip(daily_cols, totals) if t is not None}


def assert_same_sums(loader, catalog):
    want_channel, want_daily = served(catalog)
    got_channel, got_daily = stored(loader)
    nonzero = {k: v for k, v in want_channel.items() if v}
    assert set(nonzero) <= set(got_channel)
    for key, value in nonzero.items():
        assert got_channel[key] == pytest.approx(value), key
    for key, value in want_daily.items():
        if value:
            assert got_daily[key] == pytest.approx(value), key


def test_every_channel_lands_in_the_contract_with_the_sums_the_sandbox_served(
    loader, catalog, sends_file
):
    result = loader.run(sends_file=str(sends_file))
    assert result.failed == 0 and result.summary["pulled"] == len(sent_pairs(catalog))
    channels = {c for (c,) in loader.sql("SELECT DISTINCT channel FROM braze.send_variation_daily")}
    assert channels == set(CHANNELS)
    assert_same_sums(loader, catalog)
    assert (
        loader.sql(
            "SELECT count(*) FROM braze.send_variation_daily WHERE variation_name = 'Control Group' "
            "AND enrolled > 0 AND sent IS NULL"
        )[0][0]
        > 0
    )


def test_a_rerun_changes_no_sums_and_adds_no_rows(loader, catalog, sends_file):
    loader.run(sends_file=str(sends_file))
    first = stored(loader), loader.sql("SELECT count(*) FROM braze.send_variation_daily")
    loader.run()  # no sends file: the registry remembers the pairs
    second = stored(loader), loader.sql("SELECT count(*) FROM braze.send_variation_daily")
    assert first == second
    dupes = loader.sql(
        "SELECT count(*) FROM (SELECT campaign_id, send_id, date, channel, variation_name "
        "FROM braze.send_variation_daily GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dupes == [(0,)]
    assert loader.sql("SELECT count(*) FROM braze.sends") == [(len(sent_pairs(catalog)),)]


def test_restated_numbers_replace_the_stored_ones(loader, catalog, sends_file, sandbox):
    loader.run(sends_file=str(sends_file))
    before = loader.sql("SELECT sum(opens) FROM braze.send_variation_daily")[0][0]
    sandbox.clock.set(NOW + timedelta(days=1))
    loader.run()
    after = loader.sql("SELECT sum(opens) FROM braze.send_variation_daily")[0][0]
    assert after > before  # late opens were booked on earlier days and the merge took them
    served_a_day_later = served(catalog, as_of=NOW + timedelta(days=1))[0]
    total = sum(v for (_, key), v in served_a_day_later.items() if key == "opens")
    assert after == total


def test_column_types_are_stable_and_match_the_contract(loader, sends_file):
    loader.run(sends_file=str(sends_file))
    variation = columns(loader, "send_variation_daily")
    assert variation["date"] == "DATE"
    assert variation["pulled_at"] == "TIMESTAMP WITH TIME ZONE"
    assert variation["revenue"] == "DOUBLE"
    assert variation["sent"] == variation["unique_opens"] == variation["enrolled"] == "BIGINT"
    assert variation["machine_open"] == "BIGINT"
    assert not [c for c in variation if "__v_" in c]
    daily = columns(loader, "send_daily")
    assert daily["revenue"] == "DOUBLE" and daily["conversions"] == "BIGINT"
    sends = columns(loader, "sends")
    assert sends["last_pulled_at"] == "TIMESTAMP WITH TIME ZONE" and sends["sent_date"] == "DATE"


def test_a_new_channel_and_new_metric_keys_are_kept(loader, catalog, sandbox):
    campaign = next(iter(catalog.campaigns))
    catalog.add_send(
        campaign_id=campaign,
        send_id="send_rcs_1",
        sent_at=NOW - timedelta(days=2),
        channels={"rcs": ["sent", "delivered", "read"], "email": None},
        extra_metrics={"brand_new_count": "int", "shifty_metric": "mixed"},
        extra_day_metrics={"conversions4": "int"},
    )
    result = loader.run(pairs=[SendPair(campaign, "send_rcs_1", NOW - timedelta(days=2))])
    assert result.failed == 0
    cols = columns(loader, "send_variation_daily")
    assert {"brand_new_count", "shifty_metric"} <= set(cols)
    assert cols["shifty_metric"] == "DOUBLE"  # int one day, 2.5 the next: one numeric type
    rcs = loader.sql(
        "SELECT sum(sent), sum(read) FROM braze.send_variation_daily WHERE channel = 'rcs'"
    )
    assert rcs[0][0] > 0 and rcs[0][1] >= 0
    assert "conversions4" in columns(loader, "send_daily")
    fractional = loader.sql(
        "SELECT count(*) FROM braze.send_variation_daily "
        "WHERE shifty_metric <> floor(shifty_metric)"
    )
    assert fractional[0][0] > 0


def test_a_pair_answering_400_is_recorded_as_failed_and_the_others_load(loader, catalog):
    good = [SendPair(c, s, at) for c, s, at in sent_pairs(catalog)[:5]]
    bad = SendPair("no-such-campaign", "send_x")
    result = loader.run(pairs=[*good, bad])
    assert result.failed == 1 and result.summary["pulled"] == 5
    assert loader.sql("SELECT count(DISTINCT send_id) FROM braze.send_variation_daily") == [(5,)]
    status, error, pulled = loader.sql(
        "SELECT status, last_error, last_pulled_at FROM braze.sends "
        "WHERE campaign_id = 'no-such-campaign'"
    )[0]
    assert status == "failed" and pulled is None
    assert "HTTP 400" in error and "Invalid Campaign ID" in error and "send_x" in error


def test_429_bursts_and_5xx_storms_are_retried_through(loader, catalog, sends_file, sandbox):
    sandbox.rate_limit = RateLimit(limit=10, window_seconds=1)
    sandbox.faults = Faults(seed=3, error_rate=0.3)
    for campaign_id, send_id, _ in sent_pairs(catalog)[:4]:
        sandbox.script(campaign_id, send_id, [503, 502, 500, 504])
    for campaign_id, send_id, _ in sent_pairs(catalog)[4:7]:
        sandbox.script(campaign_id, send_id, [429, 429])
    result = loader.run(
        sends_file=str(sends_file),
        workers=4,
        backoff_seconds=0.05,
        requests_per_hour=50 * 3600,
        max_attempts=10,
    )
    statuses = result.summary["statuses"]
    assert result.failed == 0
    assert statuses.get("429", 0) > 0 and sandbox.stats.count(429) == statuses["429"]
    assert sum(statuses.get(s, 0) for s in ("500", "502", "503", "504")) >= 16
    assert_same_sums(loader, catalog)


def test_the_sends_table_mirrors_each_pairs_lifecycle(loader, catalog, sends_file):
    loader.run(sends_file=str(sends_file))
    rows = loader.sql(
        "SELECT status, sent_date, window_closes_at, last_pulled_at, days_loaded, "
        "last_error FROM braze.sends"
    )
    assert len(rows) == len(sent_pairs(catalog))
    for status, sent_date, closes, pulled, days, error in rows:
        assert status in ("open", "final")
        assert closes == datetime.combine(sent_date, datetime.min.time(), UTC) + timedelta(
            days=14
        ) or closes.date() == sent_date + timedelta(days=14)
        assert pulled is not None and error is None
        assert days == (NOW.date() - sent_date).days + 1


def test_arrow_and_row_paths_load_identical_tables(tmp_path, sandbox, catalog, sends_file):
    from tests.conftest import Loader

    skip = {"pulled_at", "_dlt_load_id", "_dlt_id"}  # when loaded, and dlt's row ids
    results = {}
    for item_format in ("arrow", "rows"):
        (tmp_path / item_format).mkdir()
        run = Loader(tmp_path / item_format, sandbox)
        run.run(sends_file=str(sends_file), item_format=item_format)
        for table in ("send_variation_daily", "send_daily", "sends"):
            types = {c: t for c, t in columns(run, table).items() if c not in skip}
            names = ", ".join(sorted(types))
            results[(item_format, table)] = (
                sorted(types.items()),
                run.sql(f"SELECT {names} FROM braze.{table} ORDER BY ALL"),
            )
    for table in ("send_variation_daily", "send_daily", "sends"):
        assert results[("arrow", table)] == results[("rows", table)], table
    assert len(results[("arrow", "send_variation_daily")][1]) > 1000


def test_a_workspace_with_hundreds_of_metric_columns_loads_and_refreshes(loader, catalog, sandbox):
    """Braze names a column per carousel slide and button: committing a merge into a table that
    wide needs more than the default DuckDB cap (this test failed at a fixed 128 MB), so the cap
    follows the widest table, and both the first load and a refresh go through."""
    campaign = next(iter(catalog.campaigns))
    extra = [f"carousel_slide_{i}_item_{i % 7}_click" for i in range(400)]
    pairs = []
    for n in range(40):
        sent_at = NOW - timedelta(days=12, minutes=n)
        catalog.add_send(
            campaign_id=campaign,
            send_id=f"wide_{n}",
            sent_at=sent_at,
            channels=["ios_push", "android_push", "email", "sms"],
            extra_metrics=extra,
        )
        pairs.append(SendPair(campaign, f"wide_{n}", sent_at))
    first = loader.run(pairs=pairs, campaigns=False)
    assert first.failed == 0
    sandbox.clock.set(NOW + timedelta(hours=6))  # restated numbers: the refresh merges over rows
    second = loader.run(now=sandbox.clock.now(), campaigns=False)
    assert second.failed == 0 and second.summary["pulled"] == 40
    assert set(extra) <= set(columns(loader, "send_variation_daily"))
    today = sandbox.clock.now()
    series = catalog.series(campaign, "wide_2", length=16, ending_at_date=today.date(), as_of=today)
    expected = sum(
        v.get(extra[-1], 0) for day in series for vs in day["messages"].values() for v in vs
    )
    stored = loader.sql(
        f"SELECT sum({extra[-1]}) FROM braze.send_variation_daily WHERE send_id = 'wide_2'"
    )
    assert stored[0][0] == expected and expected > 0


def test_duckdb_settings_from_the_users_config_are_left_as_they_are(loader, catalog):
    pairs = [SendPair(c, s, at) for c, s, at in sent_pairs(catalog)[:5]]
    pipeline = loader.pipeline()
    loader.run(pipeline, pairs=pairs)
    mine = {"memory_limit": "300MB", "threads": 2}
    dlt.secrets[runner.DUCKDB_SETTING] = mine
    try:
        runner.size_duckdb(loader.pipeline())
        assert dict(dlt.secrets[runner.DUCKDB_SETTING]) == mine
    finally:
        runner._set_duckdb(dict(DUCKDB_DEFAULTS))
    runner.size_duckdb(pipeline)  # ours again: sized from the table, at least the default
    ours = dict(dlt.secrets[runner.DUCKDB_SETTING])
    assert ours["threads"] == DUCKDB_DEFAULTS["threads"]
    assert int(ours["memory_limit"].removesuffix("MB")) >= 128

"""The lifecycle over real runs: retention answers, expiry alarms, budgets, time zones, registry."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from braze_sends import SendPair, registry, warehouse
from braze_sends.errors import DestinationError
from braze_sends.sandbox import DEMO_API_KEY, Catalog, SandboxClock, SandboxServer
from tests.conftest import NOW, Loader, run_cli
from tests.test_pipeline import sent_pairs, stored


def pairs_of(catalog, as_of=NOW, with_sent_at=True):
    return [SendPair(c, s, at if with_sent_at else None) for c, s, at in sent_pairs(catalog, as_of)]


@pytest.mark.parametrize("mode", ["zeros", "empty", "error"])
def test_whatever_braze_answers_for_an_expired_send_the_stored_numbers_stay(
    loader, catalog, sandbox, mode
):
    loader.run(pairs=pairs_of(catalog))
    before = stored(loader)
    catalog.set_retention(mode)
    sandbox.clock.set(NOW + timedelta(days=16))  # every send is past its 14 days
    result = loader.run()
    assert stored(loader) == before  # no zeros merged over real numbers
    statuses = dict(loader.sql("SELECT status, count(*) FROM braze.sends GROUP BY 1"))
    assert statuses == {"final": len(sent_pairs(catalog))}
    if mode != "error":
        assert result.summary["retention_signals"] == len(sent_pairs(catalog))
    again = loader.run()
    assert again.summary["due"] == 0 and again.summary["requests"] == 0  # final: never again


def test_zeros_over_the_oldest_days_keep_them_and_load_the_newer_ones(loader, catalog, sandbox):
    campaign = next(iter(catalog.campaigns))
    catalog.add_send(campaign_id=campaign, send_id="send_partial", sent_at=NOW - timedelta(days=3))
    pair = SendPair(campaign, "send_partial", NOW - timedelta(days=3))
    loader.run(pairs=[pair])
    first_day = loader.sql(
        "SELECT sum(sent) FROM braze.send_variation_daily WHERE send_id = "
        "'send_partial' AND date = ?",
        (NOW - timedelta(days=3)).date(),
    )[0][0]
    assert first_day > 0
    # Suppose Braze deletes day by day: the send's first day comes back all zero.
    original = catalog.series

    def series_with_first_day_zeroed(campaign_id, send_id, **kw):
        data = original(campaign_id, send_id, **kw)
        if send_id == "send_partial":
            first = data[0]
            for key in first:
                if key not in ("time", "messages"):
                    first[key] = 0
            for variations in first["messages"].values():
                for v in variations:
                    for k in v:
                        if k not in ("variation_name", "variation_api_id"):
                            v[k] = 0
        return data

    catalog.series = series_with_first_day_zeroed
    sandbox.clock.set(NOW + timedelta(days=1))
    result = loader.run(now=NOW + timedelta(days=1))
    catalog.series = original
    assert result.summary["retention_signals"] == 1
    kept = loader.sql(
        "SELECT sum(sent) FROM braze.send_variation_daily WHERE send_id = "
        "'send_partial' AND date = ?",
        (NOW - timedelta(days=3)).date(),
    )[0][0]
    assert kept == first_day
    status = loader.sql("SELECT status FROM braze.sends WHERE send_id = 'send_partial'")
    assert status == [("final",)]


def test_a_window_that_closes_without_capture_ends_expired_and_status_exits_4(tmp_path, catalog):
    clock = SandboxClock(NOW, frozen=True)
    with SandboxServer(catalog, clock=clock) as server:
        loader = Loader(tmp_path, server)
        campaign_id, send_id, sent_at = sent_pairs(catalog)[-1]
        pair = SendPair(campaign_id, send_id, sent_at)
        server.script(campaign_id, send_id, [503] * 1000)  # Braze fails this send for days
        day = NOW
        while day < sent_at + timedelta(days=15):
            clock.set(day)
            loader.run(pairs=[pair], now=day, max_attempts=2, backoff_seconds=0.01)
            day += timedelta(days=1)
        status = loader.sql("SELECT status, last_error FROM braze.sends")
        assert status[0][0] == "expired" and "HTTP 503" in status[0][1]
    done = run_cli(
        "status",
        "--pipelines-dir",
        str(loader.pipelines_dir),
        "--json",
        "--destination",
        "duckdb",
        env={"DESTINATION__DUCKDB__CREDENTIALS": str(loader.db)},
    )
    report = json.loads(done.stdout)
    assert done.returncode == 4
    assert report["alarm"] is True and report["counts"]["expired"] == 1
    assert report["recently_expired"][0]["send_id"] == send_id


def test_run_and_status_warn_before_a_send_closes_without_a_recent_pull(tmp_path):
    """On real time (the CLI's clock): a send closing in ~20 h, last pulled 25 h ago."""
    now = datetime.now(UTC).replace(microsecond=0)
    catalog = Catalog.generate(4, start=now.date(), days=1, sends=1, campaigns=1)
    campaign = next(iter(catalog.campaigns))
    sent_at = now - timedelta(days=14) + timedelta(hours=20)
    catalog.add_send(campaign_id=campaign, send_id="send_closing", sent_at=sent_at)
    with SandboxServer(
        catalog, clock=SandboxClock(now - timedelta(hours=25), frozen=True)
    ) as server:
        loader = Loader(tmp_path, server)
        loader.run(
            pairs=[SendPair(campaign, "send_closing", sent_at)], now=now - timedelta(hours=25)
        )
    env = {"DESTINATION__DUCKDB__CREDENTIALS": str(loader.db)}
    done = run_cli("status", "--pipelines-dir", str(loader.pipelines_dir), env=env)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "AT RISK" in done.stdout and "send_closing" in done.stdout
    assert "last successful pull 1d 1h ago" in done.stdout
    calm = run_cli(
        "status", "--pipelines-dir", str(loader.pipelines_dir), "--horizon-hours", "12", env=env
    )
    assert calm.returncode == 0 and "alarms: none" in calm.stdout


def test_max_requests_serves_the_most_urgent_sends_first(loader, catalog, sandbox):
    pairs = pairs_of(catalog)
    loader.run(pairs=pairs, max_requests=0)  # registered, nothing pulled
    result = loader.run(max_requests=5)
    requested = set(sandbox.stats.by_pair)
    by_close = sorted(pairs, key=lambda p: p.sent_at)
    assert requested == {(p.campaign_id, p.send_id) for p in by_close[:5]}
    assert result.summary["deferred"] == len(pairs) - 5
    rest = loader.run()  # without a budget: the deferred ones and refreshes of the first five
    assert rest.summary["pulled"] == len(pairs)


def test_a_run_with_nothing_due_makes_no_request(loader, catalog, sandbox):
    loader.run(pairs=pairs_of(catalog), max_requests=0)
    sandbox.clock.set(NOW + timedelta(days=30))
    loader.run(now=NOW + timedelta(days=30))  # every send: one last try, then final/expired
    count = sandbox.stats.total
    result = loader.run(now=NOW + timedelta(days=31))
    assert result.summary["due"] == 0 and sandbox.stats.total == count


def test_sends_finished_a_month_ago_are_archived_still_counted_and_never_registered_again(
    loader, catalog, sandbox, monkeypatch
):
    pairs = pairs_of(catalog)
    loader.run(pairs=pairs)
    sandbox.clock.set(NOW + timedelta(days=30))
    loader.run(now=NOW + timedelta(days=30))  # every send: one last try, then final/expired
    statuses = dict(loader.sql("SELECT status, count(*) FROM braze.sends GROUP BY 1"))
    assert sum(statuses.values()) == len(pairs) and set(statuses) <= {"final", "expired"}
    sends_table = loader.sql("SELECT * FROM braze.sends ORDER BY ALL")
    asked = []
    finished_pairs = warehouse.finished_pairs
    monkeypatch.setattr(
        warehouse,
        "finished_pairs",
        lambda pipeline, candidates: (
            asked.append(set(candidates)) or finished_pairs(pipeline, candidates)
        ),
    )
    for day in (61, 62):  # 61: finished for over 30 days, archived; 62: listed again
        sandbox.clock.set(NOW + timedelta(days=day))
        count = sandbox.stats.total
        result = loader.run(pairs=pairs, now=NOW + timedelta(days=day))  # the same sends file
        assert result.summary["registered"] == 0 and result.summary["due"] == 0, day
        assert sandbox.stats.total == count
        assert result.summary["known"] == len(pairs)
        assert result.summary["status_counts"] == statuses
    # Day 61 archived them after registering; day 62 asked the `sends` table about each, once.
    assert asked == [{(p.campaign_id, p.send_id) for p in pairs}]
    monkeypatch.undo()

    # A scheduled run without a sends file never reads the warehouse for archived sends.
    def refuse(pipeline, candidates):
        raise AssertionError(f"the warehouse was asked about {len(candidates)} pairs")

    monkeypatch.setattr(warehouse, "finished_pairs", refuse)
    result = loader.run(now=NOW + timedelta(days=63))
    assert result.summary["status_counts"] == statuses and result.summary["known"] == len(pairs)
    monkeypatch.undo()
    state = loader.pipeline().state["sources"]["braze_sends"]
    assert registry.load_records(state) == {}  # what every chunk reads: nothing finished
    assert registry.ARCHIVE_KEY not in state  # the pairs: only in the `sends` table
    assert registry.archived_campaigns(state) == {p.campaign_id for p in pairs}
    keys = {(p.campaign_id, p.send_id) for p in pairs}
    asked = {*keys, (pairs[0].campaign_id, "not-registered"), ("c", "not-registered")}
    assert warehouse.finished_pairs(loader.pipeline(), asked) == keys
    assert loader.sql("SELECT * FROM braze.sends ORDER BY ALL") == sends_table
    done = run_cli(
        "status",
        "--pipelines-dir",
        str(loader.pipelines_dir),
        "--json",
        env={"DESTINATION__DUCKDB__CREDENTIALS": str(loader.db)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert {status: n for status, n in counts.items() if n} == statuses


def test_a_sends_table_that_cannot_be_read_stops_registration_with_exit_5_and_loses_nothing(
    loader, catalog, sandbox, tmp_path
):
    """Given pairs that may be archived need the `sends` table's answer: no answer, no guess."""
    pairs = pairs_of(catalog)
    loader.run(pairs=pairs)
    loader.run(now=NOW + timedelta(days=30))  # all final or expired
    loader.run(now=NOW + timedelta(days=61), max_requests=0)  # archived
    state_before = loader.pipeline().state["sources"]["braze_sends"]
    sends = tmp_path / "sends.csv"
    sends.write_text(
        "campaign_id,send_id\n" + "".join(f"{p.campaign_id},{p.send_id}\n" for p in pairs)
    )
    # Someone renamed a column the question needs (what a broken connection also leads to).
    with duckdb.connect(str(loader.db)) as con:
        con.execute("ALTER TABLE braze.sends RENAME COLUMN status TO send_status")
    done = run_cli(
        "run",
        "--sends",
        str(sends),
        "--pipelines-dir",
        str(loader.pipelines_dir),
        env={
            "DESTINATION__DUCKDB__CREDENTIALS": str(loader.db),
            "SOURCES__BRAZE__API_KEY": DEMO_API_KEY,
            "SOURCES__BRAZE__BASE_URL": sandbox.url,
        },
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert "could not read the `sends` table of dataset `braze`" in done.stderr
    assert "nothing was registered or pulled" in done.stderr
    assert DEMO_API_KEY not in done.stdout + done.stderr
    assert loader.pipeline().state["sources"]["braze_sends"] == state_before
    # No `sends` table at all (dropped, or another dataset): no answer either, not "none".
    with duckdb.connect(str(loader.db)) as con:
        con.execute("ALTER TABLE braze.sends RENAME COLUMN send_status TO status")
        con.execute("ALTER TABLE braze.sends RENAME TO sends_elsewhere")
    with pytest.raises(DestinationError, match="could not read the `sends` table"):
        loader.run(pairs=pairs, now=NOW + timedelta(days=62))
    assert loader.pipeline().state["sources"]["braze_sends"] == state_before
    # Once the warehouse answers: known, not registered again.
    with duckdb.connect(str(loader.db)) as con:
        con.execute("ALTER TABLE braze.sends_elsewhere RENAME TO sends")
    result = loader.run(pairs=pairs, now=NOW + timedelta(days=62))
    assert result.summary["registered"] == 0 and result.summary["known"] == len(pairs)


def test_ending_at_carries_the_workspace_offset_and_days_follow_its_zone(tmp_path):
    catalog = Catalog.generate(
        3,
        start=NOW.date() - timedelta(days=5),
        days=5,
        sends=6,
        campaigns=2,
        timezone="America/New_York",
    )
    with SandboxServer(catalog, clock=SandboxClock(NOW, frozen=True)) as server:
        loader = Loader(tmp_path, server)
        result = loader.run(pairs=pairs_of(catalog), timezone="America/New_York")
        params = [e.params for e in server.stats.log if e.path == "/sends/data_series"]
    assert result.failed == 0
    assert all(p["ending_at"] == "2026-11-20T23:59:59-05:00" for p in params)
    dates = {d for (d,) in loader.sql("SELECT DISTINCT date FROM braze.send_daily")}
    assert max(dates) == date(2026, 11, 20)


def test_pairs_registered_once_are_remembered_and_new_files_add_to_them(loader, catalog, sandbox):
    pairs = pairs_of(catalog, with_sent_at=False)
    loader.run(pairs=pairs[:10])
    loader.run(pairs=pairs[5:15])  # overlapping: duplicates are harmless
    result = loader.run()
    assert result.summary["known"] == 15 and result.summary["registered"] == 0
    sources = dict(loader.sql("SELECT sent_date_source, count(*) FROM braze.sends GROUP BY 1"))
    assert sources == {"data": 15}  # no sent_at given: inferred from the first active day


def test_register_command_remembers_a_pair_without_pulling_and_needs_no_key(tmp_path, sandbox):
    pipelines = str(tmp_path / "pipelines")
    env = {"DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "braze_sends.duckdb")}
    done = run_cli(
        "register",
        "c-1",
        "s-1",
        "--sent-at",
        "2026-11-19T10:00:00+00:00",
        "--pipelines-dir",
        pipelines,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "registered 1 new pair(s); 1 registered in all" in done.stdout
    again = run_cli("register", "c-1", "s-1", "--pipelines-dir", pipelines, env=env)
    assert "registered 0 new pair(s); 1 registered in all" in again.stdout
    bad = run_cli("register", "c-1", "x" * 80, "--pipelines-dir", pipelines, env=env)
    assert bad.returncode == 2 and "at most 64" in bad.stderr
    status = run_cli("status", "--json", "--pipelines-dir", pipelines, env=env)
    report = json.loads(status.stdout)
    assert report["counts"]["new"] == 1 and report["open"][0]["sent_date"] == "2026-11-19"
    assert sandbox.stats.total == 0

"""The reporting views: rates checked by hand (literal rows, then sandbox data), division by zero,
control groups, missing metrics, DuckDB and PostgreSQL alike, and failures as warnings."""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from datetime import date, timedelta

import dlt
import duckdb
import psycopg2
import pytest

from braze_sends import SendPair
from braze_sends.runner import make_pipeline
from braze_sends.sandbox import CONTROL_GROUP
from braze_sends.views import (
    SEND_CHANNEL_DAILY,
    SEND_SUMMARY,
    SEND_VARIATION_SUMMARY,
    VIEWS,
    Dialect,
    view_sql,
)
from tests.conftest import NOW, Loader, run_cli

PG_DSN = "postgresql://postgres:postgres@127.0.0.1:5432/test"  # trust auth: any password

# -- literal rows: every expected number is worked out by hand in the comments ------------------

VARIATION_DDL = """
CREATE TABLE {s}.send_variation_daily (
    campaign_id VARCHAR, send_id VARCHAR, date DATE, channel VARCHAR, variation_name VARCHAR,
    variation_api_id VARCHAR, sent BIGINT, delivered BIGINT, opens BIGINT, unique_opens BIGINT,
    clicks BIGINT, total_opens BIGINT, body_clicks BIGINT, conversions BIGINT,
    unique_recipients BIGINT, revenue DOUBLE PRECISION, enrolled BIGINT)
"""
VARIATION_ROWS = [
    # send s1, 2026-11-20: two email variations, the email control group, one push variation
    (
        "c1",
        "s1",
        "2026-11-20",
        "email",
        "Variant A",
        "va",
        100,
        80,
        40,
        30,
        8,
        None,
        None,
        4,
        80,
        20.0,
        None,
    ),
    (
        "c1",
        "s1",
        "2026-11-20",
        "email",
        "Variant B",
        "vb",
        100,
        70,
        35,
        20,
        7,
        None,
        None,
        3,
        70,
        10.0,
        None,
    ),
    (
        "c1",
        "s1",
        "2026-11-20",
        "email",
        CONTROL_GROUP,
        "cg",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        1,
        50,
        5.0,
        50,
    ),
    (
        "c1",
        "s1",
        "2026-11-20",
        "ios_push",
        "Variant A",
        "vp",
        50,
        40,
        None,
        None,
        None,
        10,
        4,
        2,
        40,
        0.0,
        None,
    ),
    # 2026-11-21: a zero day (Braze zero-fills the window)
    (
        "c1",
        "s1",
        "2026-11-21",
        "email",
        "Variant A",
        "va",
        0,
        0,
        0,
        0,
        0,
        None,
        None,
        0,
        0,
        0.0,
        None,
    ),
    (
        "c1",
        "s1",
        "2026-11-21",
        "email",
        CONTROL_GROUP,
        "cg",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        0,
        0,
        0.0,
        0,
    ),
]
SENDS_DDL = """
CREATE TABLE {s}.sends (campaign_id VARCHAR, send_id VARCHAR, status VARCHAR,
    sent_at TIMESTAMP WITH TIME ZONE, sent_date DATE, window_closes_at TIMESTAMP WITH TIME ZONE,
    last_pulled_at TIMESTAMP WITH TIME ZONE, last_error VARCHAR)
"""
SENDS_ROWS = [
    ("c1", "s1", "open", None, "2026-11-20", "2026-12-04T00:00:00+00:00", None, None),
    ("c1", "s2", "new", None, None, None, None, None),  # registered, never captured
]
CAMPAIGNS_DDL = """
CREATE TABLE {s}.campaigns (campaign_id VARCHAR, name VARCHAR, conversions_label VARCHAR,
    conversions1_label VARCHAR, conversions2_label VARCHAR, conversions3_label VARCHAR)
"""
CAMPAIGNS_ROWS = [
    ("c1", "Cart Nudge", "Performs Custom Event: checkout_completed", None, None, None)
]
TABLE_COLUMNS = {
    "send_variation_daily": {
        "campaign_id",
        "send_id",
        "date",
        "channel",
        "variation_name",
        "variation_api_id",
        "sent",
        "delivered",
        "opens",
        "unique_opens",
        "clicks",
        "total_opens",
        "body_clicks",
        "conversions",
        "unique_recipients",
        "revenue",
        "enrolled",
    },
    "sends": {
        "campaign_id",
        "send_id",
        "status",
        "sent_at",
        "sent_date",
        "window_closes_at",
        "last_pulled_at",
        "last_error",
    },
    "campaigns": {
        "campaign_id",
        "name",
        "conversions_label",
        "conversions1_label",
        "conversions2_label",
        "conversions3_label",
    },
}


class Database:
    """A DuckDB file or a PostgreSQL schema holding the literal tables and the views."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        self.schema = f"views_test_{uuid.uuid4().hex[:10]}"
        if kind == "duckdb":
            self.con = duckdb.connect(str(tmp_path / "literal.duckdb"))
        else:
            self.con = psycopg2.connect(PG_DSN)
            self.con.autocommit = True
        self.execute(f"CREATE SCHEMA {self.schema}")

    def execute(self, sql: str, params=()):
        if self.kind == "duckdb":
            return self.con.execute(sql, list(params))
        cursor = self.con.cursor()
        cursor.execute(sql.replace("?", "%s"), params)
        return cursor

    def rows(self, sql: str, params=()) -> list[dict]:
        cursor = self.execute(sql.format(s=self.schema), params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def close(self) -> None:
        if self.kind == "postgres":
            self.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.con.close()


@pytest.fixture(params=["duckdb", "postgres"])
def literal(request, tmp_path):
    db = Database(request.param, tmp_path)
    for ddl, rows in (
        (VARIATION_DDL, VARIATION_ROWS),
        (SENDS_DDL, SENDS_ROWS),
        (CAMPAIGNS_DDL, CAMPAIGNS_ROWS),
    ):
        db.execute(ddl.format(s=db.schema))
        table = ddl.split(".")[1].split()[0]
        marks = ", ".join("?" for _ in rows[0])
        for row in rows:
            db.execute(f"INSERT INTO {db.schema}.{table} VALUES ({marks})", row)
    dialect = Dialect(db.schema)
    for view in VIEWS:
        db.execute(
            f"CREATE VIEW {dialect.table(view.name)} AS {view_sql(view, TABLE_COLUMNS, dialect)}"
        )
    yield db
    db.close()


def approx(value):
    return pytest.approx(value, rel=1e-12)


def test_send_channel_daily_rates_by_hand(literal):
    rows = {
        (str(r["date"]), r["channel"]): r
        for r in literal.rows("SELECT * FROM {s}.report_send_channel_daily")
    }
    email = rows[("2026-11-20", "email")]
    assert email["campaign_name"] == "Cart Nudge" and email["variations"] == 2
    assert (email["sent"], email["delivered"]) == (200, 150)  # the control group sent nothing
    assert email["delivery_rate"] == approx(150 / 200)
    assert email["open_rate"] == approx((40 + 35) / 150)
    assert email["unique_open_rate"] == approx((30 + 20) / 150)
    assert email["click_rate"] == approx((8 + 7) / 150)
    assert email["unique_recipients"] == 150  # not the control group's 50
    assert email["conversions"] == 7 and email["conversion_rate"] == approx(7 / 150)
    assert email["revenue"] == approx(30.0) and email["revenue_per_recipient"] == approx(30 / 150)
    assert (email["control_enrolled"], email["control_conversions"]) == (50, 1)
    assert email["control_conversion_rate"] == approx(1 / 50)
    push = rows[("2026-11-20", "ios_push")]
    assert push["open_rate"] == approx(10 / 40) and push["click_rate"] == approx(4 / 40)
    assert push["unique_open_rate"] is None  # push has no unique opens: NULL, not 0
    assert push["control_enrolled"] is None
    zero = rows[("2026-11-21", "email")]
    for rate in (
        "delivery_rate",
        "open_rate",
        "click_rate",
        "conversion_rate",
        "revenue_per_recipient",
        "control_conversion_rate",
    ):
        assert zero[rate] is None, rate  # 0 / 0 is NULL, never an error
    assert zero["sent"] == 0 and zero["impressions"] is None  # no such column: NULL


def test_send_summary_by_hand(literal):
    rows = {r["send_id"]: r for r in literal.rows("SELECT * FROM {s}.report_send_summary")}
    s1 = rows["s1"]
    assert (s1["sent"], s1["delivered"], s1["days"]) == (250, 190, 2)
    assert s1["channels"] == "email, ios_push" and s1["status"] == "open"
    assert s1["delivery_rate"] == approx(190 / 250)
    assert s1["open_rate"] == approx((75 + 10) / 190)  # email opens + push total_opens
    assert s1["unique_open_rate"] == approx(50 / 150)  # over email's delivered only
    assert s1["click_rate"] == approx((15 + 4) / 190)
    assert s1["conversion_rate"] == approx(9 / 190)
    assert s1["conversions_label"] == "Performs Custom Event: checkout_completed"
    never = rows["s2"]  # registered, never captured: listed, with no numbers
    assert never["status"] == "new" and never["sent"] is None and never["delivery_rate"] is None


def test_variation_views_list_the_control_group_apart(literal):
    rows = {
        (r["channel"], r["variation_name"]): r
        for r in literal.rows("SELECT * FROM {s}.report_send_variation_summary")
    }
    control = rows[("email", CONTROL_GROUP)]
    assert control["is_control"] is True and control["sent"] is None
    assert control["enrolled"] == 50 and control["conversion_rate"] == approx(1 / 50)
    assert control["revenue_per_recipient"] == approx(5 / 50) and control["delivery_rate"] is None
    variant_a = rows[("email", "Variant A")]
    assert variant_a["is_control"] is False and variant_a["sent"] == 100
    assert variant_a["open_rate"] == approx(40 / 80) and variant_a["conversion_rate"] == approx(
        4 / 80
    )
    campaign = literal.rows(
        "SELECT * FROM {s}.report_campaign_variation_summary WHERE variation_name = ?",
        [CONTROL_GROUP],
    )
    assert len(campaign) == 1 and campaign[0]["sends"] == 1 and campaign[0]["enrolled"] == 50
    daily = literal.rows(
        "SELECT * FROM {s}.report_campaign_channel_daily WHERE channel = 'email' ORDER BY date"
    )
    assert [r["sent"] for r in daily] == [200, 0] and daily[0]["sends"] == 1


# -- sandbox data through the real pipeline -----------------------------------------------------


@pytest.fixture
def hand_send(catalog):
    """A send of a known shape: email (with the control group) and iOS push, 3 days ago."""
    campaign_id = next(iter(catalog.campaigns))
    catalog.add_send(
        campaign_id=campaign_id,
        send_id="send_by_hand",
        sent_at=NOW - timedelta(days=3, hours=2),
        channels={"email": None, "ios_push": None},
        control_group=True,
    )
    return campaign_id, "send_by_hand"


def served_days(catalog, campaign_id, send_id):
    length = (NOW.date() - catalog.send_date(campaign_id, send_id)).days + 1
    return catalog.series(campaign_id, send_id, length=length, ending_at_date=NOW.date(), as_of=NOW)


def ratio(a, b):
    return None if not b else a / b


def same(got: tuple, expected: tuple) -> bool:
    """Equal value by value: None only where None is expected, numbers to 1e-9, text exactly."""

    def equal(g, e) -> bool:
        if g is None or e is None or isinstance(g, str) or isinstance(e, str):
            return g == e
        return math.isclose(g, e, rel_tol=1e-9)

    return len(got) == len(expected) and all(equal(g, e) for g, e in zip(got, expected))


def test_views_match_the_sandbox_by_hand(loader, catalog, sends_file, hand_send):
    campaign_id, send_id = hand_send
    catalog.write_sends_file(sends_file, as_of=NOW)
    loader.run(sends_file=str(sends_file))
    days = served_days(catalog, campaign_id, send_id)
    totals = defaultdict(float)
    for day in days:
        for channel, variations in day["messages"].items():
            want = defaultdict(float)
            control = [v for v in variations if v["variation_name"] == CONTROL_GROUP]
            for v in variations:
                if v["variation_name"] != CONTROL_GROUP:
                    for key, value in v.items():
                        if isinstance(value, (int, float)):
                            want[key] += value
                            totals[(channel, key)] += value
            (got,) = loader.sql(
                "SELECT sent, delivered, unique_recipients, delivery_rate, open_rate, "
                "click_rate, conversion_rate, revenue_per_recipient, control_enrolled "
                "FROM braze.report_send_channel_daily WHERE campaign_id = ? AND send_id = ? "
                "AND date = ? AND channel = ?",
                campaign_id,
                send_id,
                date.fromisoformat(day["time"]),
                channel,
            )
            opens = want["opens"] if channel == "email" else want["total_opens"]
            clicks = want["clicks"] if channel == "email" else want["body_clicks"]
            expected = (
                want["sent"],
                want["delivered"],
                want["unique_recipients"],
                ratio(want["delivered"], want["sent"]),
                ratio(opens, want["delivered"]),
                ratio(clicks, want["delivered"]),
                ratio(want["conversions"], want["unique_recipients"]),
                ratio(want["revenue"], want["unique_recipients"]),
                control[0]["enrolled"] if control else None,
            )
            assert same(got, expected), (day["time"], channel, got, expected)
    (summary,) = loader.sql(
        "SELECT sent, delivery_rate, open_rate, unique_open_rate, control_enrolled "
        "FROM braze.report_send_summary WHERE campaign_id = ? AND send_id = ?",
        campaign_id,
        send_id,
    )
    sent = totals[("email", "sent")] + totals[("ios_push", "sent")]
    delivered = totals[("email", "delivered")] + totals[("ios_push", "delivered")]
    opens = totals[("email", "opens")] + totals[("ios_push", "total_opens")]
    assert summary[0] == sent > 0
    assert summary[1] == pytest.approx(delivered / sent)
    assert summary[2] == pytest.approx(opens / delivered)
    assert summary[3] == pytest.approx(
        totals[("email", "unique_opens")] / totals[("email", "delivered")]
    )
    assert summary[4] > 0  # the control group's enrolled, kept apart


def test_no_rate_is_infinite_or_nan_and_zero_days_give_null(loader, catalog, sends_file):
    loader.run(sends_file=str(sends_file))
    for view in VIEWS:
        rates = [c for c in ("delivery_rate", "open_rate", "click_rate", "conversion_rate")]
        for row in loader.sql(f"SELECT {', '.join(rates)} FROM braze.{view.name}"):
            assert all(v is None or (math.isfinite(v) and v >= 0) for v in row), view.name
    zero_days = loader.sql(
        "SELECT count(*), count(delivery_rate) FROM braze.report_send_channel_daily WHERE sent = 0"
    )[0]
    assert zero_days[0] > 0 and zero_days[1] == 0


def test_control_groups_are_not_counted_as_sends(loader, catalog, sends_file, hand_send):
    catalog.write_sends_file(sends_file, as_of=NOW)
    loader.run(sends_file=str(sends_file))
    table = dict(
        loader.sql(
            "SELECT send_id, sum(unique_recipients) FROM braze.send_variation_daily "
            "WHERE variation_name <> ? GROUP BY 1",
            CONTROL_GROUP,
        )
    )
    control = dict(
        loader.sql(
            "SELECT send_id, sum(enrolled) FROM braze.send_variation_daily "
            "WHERE variation_name = ? GROUP BY 1",
            CONTROL_GROUP,
        )
    )
    view = {
        send_id: (recipients, enrolled)
        for send_id, recipients, enrolled in loader.sql(
            "SELECT send_id, unique_recipients, control_enrolled FROM braze.report_send_summary"
        )
    }
    assert control and "send_by_hand" in control
    for send_id, recipients in table.items():
        assert view[send_id] == (recipients, control.get(send_id))
    variations = loader.sql(
        "SELECT is_control, sent FROM braze.report_send_variation_summary WHERE variation_name = ?",
        CONTROL_GROUP,
    )
    assert variations and all(is_control and sent is None for is_control, sent in variations)


def test_a_channel_without_opens_or_clicks_still_gets_its_views(tmp_path, sandbox, catalog):
    campaign_id = next(iter(catalog.campaigns))
    catalog.add_send(
        campaign_id=campaign_id,
        send_id="webhook_only",
        sent_at=NOW - timedelta(days=1),
        channels=["webhook"],
        control_group=False,
    )
    loader = Loader(tmp_path, sandbox)
    loader.run(pairs=[SendPair(campaign_id, "webhook_only", NOW - timedelta(days=1))])
    rows = loader.sql(
        "SELECT sent, delivered, opens, delivery_rate, open_rate, click_rate "
        "FROM braze.report_send_channel_daily WHERE sent > 0"
    )
    assert rows and all(r[0] > 0 and r[1:] == (None,) * 5 for r in rows)


def test_they_are_views_and_follow_the_tables(loader, catalog, sends_file, sandbox):
    loader.run(sends_file=str(sends_file))
    kinds = dict(
        loader.sql(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = 'braze' AND table_name LIKE 'report_%'"
        )
    )
    assert kinds == {v.name: "VIEW" for v in VIEWS}
    with duckdb.connect(str(loader.db)) as con:  # data changes, no view is recreated
        con.execute("UPDATE braze.send_variation_daily SET sent = sent * 2")
        doubled = con.execute("SELECT sum(sent) FROM braze.report_send_summary").fetchone()[0]
        raw = con.execute("SELECT sum(sent) FROM braze.send_variation_daily").fetchone()[0]
    assert doubled == raw > 0


def test_a_view_that_cannot_be_created_is_a_warning_and_the_data_is_loaded(
    loader, catalog, sends_file, sandbox, caplog
):
    loader.run(sends_file=str(sends_file))
    with duckdb.connect(str(loader.db)) as con:  # someone's own table takes a view's name
        con.execute(f"DROP VIEW braze.{SEND_SUMMARY.name}")
        con.execute(f"CREATE TABLE braze.{SEND_SUMMARY.name} (x INTEGER)")
    sandbox.clock.set(NOW + timedelta(hours=6))
    with caplog.at_level(logging.WARNING, logger="braze_sends.views"):
        result = loader.run(now=sandbox.clock.now())
    assert result.summary["pulled"] > 0
    assert "reporting views not created" in caplog.text and SEND_SUMMARY.name in caplog.text
    pulled = loader.sql("SELECT max(last_pulled_at) FROM braze.sends")[0][0]
    assert pulled == NOW + timedelta(hours=6)  # the run's data is loaded all the same
    others = loader.sql(f"SELECT count(*) FROM braze.{SEND_CHANNEL_DAILY.name}")[0][0]
    assert others > 0  # and the other views were still created


def test_the_views_command(loader, catalog, sends_file, sandbox, tmp_path):
    loader.run(sends_file=str(sends_file))
    with duckdb.connect(str(loader.db)) as con:
        con.execute(f"DROP VIEW braze.{SEND_VARIATION_SUMMARY.name}")
    env = {"DESTINATION__DUCKDB__CREDENTIALS": str(loader.db)}
    done = run_cli("views", "--pipelines-dir", str(loader.pipelines_dir), env=env)
    assert done.returncode == 0, done.stderr
    assert SEND_VARIATION_SUMMARY.name in done.stdout
    assert loader.sql(f"SELECT count(*) FROM braze.{SEND_VARIATION_SUMMARY.name}")[0][0] > 0


def test_postgres_views_give_the_same_numbers_as_duckdb(tmp_path, sandbox, catalog, sends_file):
    dataset = f"braze_views_{uuid.uuid4().hex[:10]}"
    duck = Loader(tmp_path / "duck", sandbox)
    (tmp_path / "duck").mkdir()
    duck.run(sends_file=str(sends_file))
    pg_loader = Loader(tmp_path, sandbox)
    pipeline = make_pipeline(
        pipeline_name="braze_sends_pg_views",
        destination=dlt.destinations.postgres(credentials=PG_DSN),
        dataset_name=dataset,
        pipelines_dir=str(tmp_path / "pg_pipelines"),
    )
    query = (
        "SELECT campaign_id, send_id, sent, delivered, conversions, control_enrolled, "
        "delivery_rate, open_rate, click_rate, conversion_rate, revenue_per_recipient, "
        "control_conversion_rate FROM {s}.report_send_summary "
        "ORDER BY campaign_id, send_id"
    )
    try:
        pg_loader.run(pipeline, sends_file=str(sends_file))
        with psycopg2.connect(PG_DSN) as con, con.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.views WHERE table_schema = %s",
                (dataset,),
            )
            views = {name for (name,) in cursor.fetchall()}
            cursor.execute(query.format(s=dataset))
            on_pg = cursor.fetchall()
    finally:
        with psycopg2.connect(PG_DSN) as con, con.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {dataset} CASCADE")
            cursor.execute(f"DROP SCHEMA IF EXISTS {dataset}_staging CASCADE")
    assert views == {v.name for v in VIEWS}
    on_duck = duck.sql(query.format(s="braze"))
    assert len(on_pg) == len(on_duck) > 30
    assert all(same(p, d) for p, d in zip(on_pg, on_duck))

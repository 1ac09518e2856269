"""Reporting views over the loaded tables, created in the destination after each load.

Views, not copies: they read `send_variation_daily`, `sends` and `campaigns` at query time, so
they are always current. The SQL is generated here from the columns that exist (a metric no
channel has sent yet is a NULL column) and sticks to what DuckDB and PostgreSQL both speak:
`CAST(.. AS DOUBLE PRECISION)`, `NULLIF`, `CASE`, `COALESCE`, CTEs. Every output column has a
fixed type, so `CREATE OR REPLACE VIEW` keeps working as new metric columns appear.

- Rates are null-safe: a zero or missing denominator gives NULL, never an error or infinity.
- Control groups (`variation_name = 'Control Group'`, or a row with `enrolled` and no `sent`)
  are never counted as sends: in the send, channel and campaign views their numbers appear only
  as `control_enrolled` / `control_conversions`; the variation views list them as their own row.
- Rates mean the same across channels: opens are `opens` (email) or `total_opens` (push); clicks
  are `clicks` (email, SMS, in-app messages), `body_clicks` (push) or `total_clicks` (content
  cards); each rate's denominator counts only rows of channels that report its numerator.

`VIEWS` names and describes every view; `COLUMN_MEANINGS` describes every output column (the
data dictionary is generated from both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import dlt

from braze_sends.campaigns import CAMPAIGNS_TABLE, CONVERSION_METRICS
from braze_sends.errors import BrazeSendsError
from braze_sends.settings import SENDS_TABLE, VARIATION_TABLE

logger = logging.getLogger(__name__)

CONTROL_GROUP = "Control Group"

# Braze metrics carried by the views (summed), with their SQL type.
COUNTS = (
    "sent",
    "delivered",
    "bounces",
    "opens",
    "unique_opens",
    "total_opens",
    "direct_opens",
    "clicks",
    "unique_clicks",
    "body_clicks",
    "total_clicks",
    "impressions",
    "total_impressions",
    "unsubscribes",
    *CONVERSION_METRICS,
    "unique_recipients",
)
AMOUNTS = ("revenue",)
RATES = (
    "delivery_rate",
    "open_rate",
    "unique_open_rate",
    "click_rate",
    "conversion_rate",
    "revenue_per_recipient",
)
BIGINT, DOUBLE, TEXT, DATE, BOOL, STAMP = (
    "BIGINT",
    "DOUBLE PRECISION",
    "VARCHAR",
    "DATE",
    "BOOLEAN",
    "TIMESTAMP WITH TIME ZONE",
)


@dataclass(frozen=True)
class View:
    """One reporting view: its name, grain and what it is for."""

    name: str
    grain: tuple[str, ...]  # columns of send_variation_daily it groups by
    description: str
    by_variation: bool = False  # one row per variation, control groups included


SEND_CHANNEL_DAILY = View(
    "report_send_channel_daily",
    ("campaign_id", "send_id", "date", "channel"),
    "One row per send, day and channel: the day's counts summed over the send's variations "
    "(control group excluded) with null-safe rates and the campaign's name.",
)
SEND_SUMMARY = View(
    "report_send_summary",
    ("campaign_id", "send_id"),
    "One row per registered send (every row of `sends`, captured or not): its window status and "
    "its counts and rates over its whole window, with the campaign's name and what each "
    "conversion event counts.",
)
CAMPAIGN_CHANNEL_DAILY = View(
    "report_campaign_channel_daily",
    ("campaign_id", "channel", "date"),
    "One row per campaign, channel and day: the counts of all its sends summed (control groups "
    "excluded), with null-safe rates and the campaign's name.",
)
SEND_VARIATION_SUMMARY = View(
    "report_send_variation_summary",
    ("campaign_id", "send_id", "channel", "variation_name"),
    "One row per send, channel and variation over the send's whole window, control group "
    "included (`is_control`), to compare variations with each other and with the control group.",
    by_variation=True,
)
CAMPAIGN_VARIATION_SUMMARY = View(
    "report_campaign_variation_summary",
    ("campaign_id", "channel", "variation_name"),
    "One row per campaign, channel and variation over all the campaign's sends, control group "
    "included (`is_control`).",
    by_variation=True,
)
VIEWS: tuple[View, ...] = (
    SEND_CHANNEL_DAILY,
    SEND_SUMMARY,
    CAMPAIGN_CHANNEL_DAILY,
    SEND_VARIATION_SUMMARY,
    CAMPAIGN_VARIATION_SUMMARY,
)

COLUMN_MEANINGS: dict[str, str] = {
    "campaign_id": "the campaign's API identifier",
    "campaign_name": "the campaign's name (`campaigns.name`; NULL until its details are loaded)",
    "send_id": "the send's identifier",
    "date": "the day, in the workspace time zone",
    "channel": "Braze's channel key (`email`, `ios_push`, `sms`, ...)",
    "variation_name": "the message variation (`Control Group` for the control group)",
    "variation_api_id": "Braze's id of the variation",
    "is_control": "true for the control group: users held out, counted in `enrolled`",
    "variations": "message variations that sent on this channel and day (control group excluded)",
    "sends": "sends with a row in the group",
    "status": "the send's window status (`new`, `open`, `failed`, `final`, `expired`)",
    "sent_at": "when the send went out, as registered",
    "sent_date": "the send's date in the workspace time zone",
    "window_closes_at": "when Braze may delete the send's analytics (send + 14 days)",
    "last_pulled_at": "the last successful pull of the send",
    "last_error": "the send's last error (never the key), NULL after a successful pull",
    "channels": "the channels the send went out on, comma-separated",
    "first_date": "the first day loaded for the send",
    "last_date": "the last day loaded for the send",
    "days": "days loaded for the send",
    "sent": "messages sent (Braze `sent`)",
    "delivered": "messages delivered (Braze `delivered`; email, push, SMS, WhatsApp)",
    "bounces": "bounces (Braze `bounces`)",
    "opens": "email opens (Braze `opens`)",
    "unique_opens": "email unique opens (Braze `unique_opens`)",
    "total_opens": "push opens, direct and influenced (Braze `total_opens`)",
    "direct_opens": "push opens from the notification itself (Braze `direct_opens`)",
    "clicks": "clicks (Braze `clicks`: email, SMS, in-app messages)",
    "unique_clicks": "unique clicks (Braze `unique_clicks`: email, content cards)",
    "body_clicks": "push body clicks (Braze `body_clicks`)",
    "total_clicks": "content card clicks (Braze `total_clicks`)",
    "impressions": "in-app message impressions (Braze `impressions`)",
    "total_impressions": "content card impressions (Braze `total_impressions`)",
    "unsubscribes": "email unsubscribes (Braze `unsubscribes`)",
    "conversions": "conversions of event A (its meaning: `conversions_label`)",
    "conversions1": "conversions of event B (`conversions1_label`)",
    "conversions2": "conversions of event C (`conversions2_label`)",
    "conversions3": "conversions of event D (`conversions3_label`)",
    "revenue": "revenue in USD (Braze `revenue`)",
    "unique_recipients": "unique recipients (Braze `unique_recipients`, summed over days)",
    "enrolled": "users enrolled in the control group (Braze `enrolled`)",
    "control_enrolled": "users enrolled in the control group (its `enrolled`)",
    "control_conversions": "conversions (event A) of the control group",
    "delivery_rate": "delivered / sent, over channels that report `delivered`",
    "open_rate": "opens / delivered: email `opens`, push `total_opens`",
    "unique_open_rate": "unique_opens / delivered (email)",
    "click_rate": (
        "clicks / delivered: email and SMS `clicks`, push `body_clicks`; per impression for "
        "in-app messages (`clicks / impressions`) and content cards "
        "(`total_clicks / total_impressions`)"
    ),
    "conversion_rate": (
        "conversions (event A) / unique_recipients; for the control group / enrolled"
    ),
    "revenue_per_recipient": "revenue / unique_recipients; for the control group / enrolled",
    "control_conversion_rate": "control_conversions / control_enrolled",
    **{
        f"{m}_label": f"what `{m}` counts, e.g. `Performs Custom Event: checkout_completed`"
        for m in CONVERSION_METRICS
    },
}


# -- SQL generation (pure) ----------------------------------------------------------------------

Quote = Callable[[str], str]


def _double_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Dialect:
    """How the destination quotes names; `dataset` is the schema holding the tables."""

    dataset: str
    quote: Quote = _double_quote

    def table(self, name: str) -> str:
        return f"{self.quote(self.dataset)}.{self.quote(name)}"


def _ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator as a double; NULL when the denominator is 0 or NULL."""
    return f"CAST({numerator} AS {DOUBLE}) / NULLIF(CAST({denominator} AS {DOUBLE}), 0)"


def _as(expression: str, name: str, q: Quote) -> str:
    return f"{expression} AS {q(name)}"


def _typed(expression: str, kind: str, name: str, q: Quote) -> str:
    return f"CAST({expression} AS {kind}) AS {q(name)}"


# Row-level helper columns: numerators and denominators of the rates (see `_measures`).
_HELPERS = (
    "_open_events",
    "_click_events",
    "_delivery_base",
    "_open_base",
    "_unique_open_base",
    "_click_base",
    "_recipients",
)


def _measures(columns: set[str], q: Quote) -> str:
    """The row-level CTE `m`: every metric (NULL when the column does not exist), the
    control-group flag (1/0) and the helper columns the rates divide."""

    def col(name: str) -> str:
        if name in columns:
            return f"v.{q(name)}"
        return f"CAST(NULL AS {DOUBLE if name in AMOUNTS else BIGINT})"

    control = [f"v.{q('variation_name')} = '{CONTROL_GROUP}'"]
    if "enrolled" in columns:
        control.append(f"({col('enrolled')} IS NOT NULL AND {col('sent')} IS NULL)")
    is_control = "(" + " OR ".join(control) + ")"
    api_id = col("variation_api_id") if "variation_api_id" in columns else "CAST(NULL AS VARCHAR)"
    opens = f"COALESCE({col('opens')}, {col('total_opens')})"
    clicks = f"COALESCE({col('clicks')}, {col('body_clicks')}, {col('total_clicks')})"
    seen = f"COALESCE({col('delivered')}, {col('total_impressions')}, {col('impressions')})"
    recipients = (
        f"CASE WHEN {is_control} THEN {col('enrolled')} ELSE {col('unique_recipients')} END"
    )
    fields = [
        *(_as(f"v.{q(k)}", k, q) for k in ("campaign_id", "send_id", "date", "channel")),
        _as(f"v.{q('variation_name')}", "variation_name", q),
        _as(api_id, "variation_api_id", q),
        _as(f"CASE WHEN {is_control} THEN 1 ELSE 0 END", "is_control", q),
        *(_as(col(m), m, q) for m in (*COUNTS, *AMOUNTS, "enrolled")),
        _as(opens, "_open_events", q),
        _as(clicks, "_click_events", q),
        _as(
            f"CASE WHEN {col('delivered')} IS NOT NULL THEN {col('sent')} END", "_delivery_base", q
        ),
        _as(f"CASE WHEN {opens} IS NOT NULL THEN {col('delivered')} END", "_open_base", q),
        _as(
            f"CASE WHEN {col('unique_opens')} IS NOT NULL THEN {col('delivered')} END",
            "_unique_open_base",
            q,
        ),
        _as(f"CASE WHEN {clicks} IS NOT NULL THEN {seen} END", "_click_base", q),
        _as(recipients, "_recipients", q),
    ]
    return "SELECT\n    " + ",\n    ".join(fields)


def _aggregate(view: View, q: Quote) -> str:
    """The CTE `a`: `m` summed to the view's grain."""
    control = f"m.{q('is_control')}"

    def m(name: str) -> str:
        return f"m.{q(name)}"

    if view.by_variation:  # each row is one variation: the control group is a row of its own
        sums = [_as(f"sum({m(k)})", k, q) for k in (*COUNTS, *AMOUNTS, *_HELPERS)]
        extra = [
            _as(f"max({m('variation_api_id')})", "variation_api_id", q),
            _as(f"max({control})", "is_control", q),
            _as(f"sum({m('enrolled')})", "enrolled", q),
        ]
    else:  # control groups are not sends: only their enrolled and conversions are kept apart
        sums = [
            _as(f"sum(CASE WHEN {control} = 0 THEN {m(k)} END)", k, q)
            for k in (*COUNTS, *AMOUNTS, *_HELPERS)
        ]
        extra = [
            _as(f"sum(CASE WHEN {control} = 1 THEN {m('enrolled')} END)", "control_enrolled", q),
            _as(
                f"sum(CASE WHEN {control} = 1 THEN {m('conversions')} END)",
                "control_conversions",
                q,
            ),
        ]
    if view is SEND_CHANNEL_DAILY:
        variation = f"CASE WHEN {control} = 0 THEN {m('variation_name')} END"
        extra.append(_as(f"count(DISTINCT {variation})", "variations", q))
    if view in (CAMPAIGN_CHANNEL_DAILY, CAMPAIGN_VARIATION_SUMMARY):
        extra.append(_as(f"count(DISTINCT {m('send_id')})", "sends", q))
    if view is SEND_SUMMARY:
        channels = f"string_agg(DISTINCT {m('channel')}, ', ' ORDER BY {m('channel')})"
        extra += [
            _as(channels, "channels", q),
            _as(f"min({m('date')})", "first_date", q),
            _as(f"max({m('date')})", "last_date", q),
            _as(f"count(DISTINCT {m('date')})", "days", q),
        ]
    grain = [m(k) for k in view.grain]
    fields = [*(_as(g, k, q) for g, k in zip(grain, view.grain)), *extra, *sums]
    return "SELECT\n    " + ",\n    ".join(fields) + "\nFROM m\nGROUP BY " + ", ".join(grain)


def _rates(q: Quote) -> list[str]:
    def a(name: str) -> str:
        return f"a.{q(name)}"

    return [
        _as(_ratio(a("delivered"), a("_delivery_base")), "delivery_rate", q),
        _as(_ratio(a("_open_events"), a("_open_base")), "open_rate", q),
        _as(_ratio(a("unique_opens"), a("_unique_open_base")), "unique_open_rate", q),
        _as(_ratio(a("_click_events"), a("_click_base")), "click_rate", q),
        _as(_ratio(a("conversions"), a("_recipients")), "conversion_rate", q),
        _as(_ratio(a("revenue"), a("_recipients")), "revenue_per_recipient", q),
    ]


def _outputs(view: View, tables: dict[str, set[str]], q: Quote) -> list[str]:
    """The view's columns, each with a fixed type."""
    has_campaigns = CAMPAIGNS_TABLE in tables
    driver = "s" if view is SEND_SUMMARY else "a"  # the summary lists every registered send
    out = [
        _typed(f"{driver}.{q('campaign_id')}", TEXT, "campaign_id", q),
        _typed(f"c.{q('name')}" if has_campaigns else "NULL", TEXT, "campaign_name", q),
        *(_typed(f"{driver}.{q(k)}", DATE if k == "date" else TEXT, k, q) for k in view.grain[1:]),
    ]
    if view is SEND_SUMMARY:
        sends = tables.get(SENDS_TABLE, set())
        for name, kind in (
            ("status", TEXT),
            ("sent_at", STAMP),
            ("sent_date", DATE),
            ("window_closes_at", STAMP),
            ("last_pulled_at", STAMP),
            ("last_error", TEXT),
        ):
            out.append(_typed(f"s.{q(name)}" if name in sends else "NULL", kind, name, q))
        for name, kind in (
            ("channels", TEXT),
            ("first_date", DATE),
            ("last_date", DATE),
            ("days", BIGINT),
        ):
            out.append(_typed(f"a.{q(name)}", kind, name, q))
    if view.by_variation:
        out.append(_typed(f"a.{q('variation_api_id')}", TEXT, "variation_api_id", q))
        out.append(_as(f"(a.{q('is_control')} = 1)", "is_control", q))
    if view is SEND_CHANNEL_DAILY:
        out.append(_typed(f"a.{q('variations')}", BIGINT, "variations", q))
    if view in (CAMPAIGN_CHANNEL_DAILY, CAMPAIGN_VARIATION_SUMMARY):
        out.append(_typed(f"a.{q('sends')}", BIGINT, "sends", q))
    out += [_typed(f"a.{q(k)}", BIGINT, k, q) for k in COUNTS]
    out += [_typed(f"a.{q(k)}", DOUBLE, k, q) for k in AMOUNTS]
    if view.by_variation:
        out.append(_typed(f"a.{q('enrolled')}", BIGINT, "enrolled", q))
    else:
        out.append(_typed(f"a.{q('control_enrolled')}", BIGINT, "control_enrolled", q))
        out.append(_typed(f"a.{q('control_conversions')}", BIGINT, "control_conversions", q))
    out += _rates(q)
    if not view.by_variation:
        control_rate = _ratio(f"a.{q('control_conversions')}", f"a.{q('control_enrolled')}")
        out.append(_as(control_rate, "control_conversion_rate", q))
    if view is SEND_SUMMARY:
        for metric in CONVERSION_METRICS:
            label = f"c.{q(metric + '_label')}" if has_campaigns else "NULL"
            out.append(_typed(label, TEXT, f"{metric}_label", q))
    return out


def view_sql(view: View, tables: dict[str, set[str]], dialect: Dialect) -> str:
    """The `SELECT` of `view`, given the columns of each existing table."""
    q = dialect.quote
    if view is SEND_SUMMARY:
        source = (
            f"{dialect.table(SENDS_TABLE)} AS s\nLEFT JOIN a ON a.{q('campaign_id')} = "
            f"s.{q('campaign_id')} AND a.{q('send_id')} = s.{q('send_id')}"
        )
        driver = "s"
    else:
        source, driver = "a", "a"
    if CAMPAIGNS_TABLE in tables:
        source += (
            f"\nLEFT JOIN {dialect.table(CAMPAIGNS_TABLE)} AS c "
            f"ON c.{q('campaign_id')} = {driver}.{q('campaign_id')}"
        )
    measures = _measures(tables[VARIATION_TABLE], q)
    return (
        f"WITH m AS (\n{measures}\nFROM {dialect.table(VARIATION_TABLE)} AS v\n),\n"
        f"a AS (\n{_aggregate(view, q)}\n)\n"
        "SELECT\n    " + ",\n    ".join(_outputs(view, tables, q)) + f"\nFROM {source}"
    )


def creatable(tables: dict[str, set[str]]) -> list[View]:
    """The views whose source tables exist (`send_variation_daily`, and `sends` for the
    summary)."""
    if VARIATION_TABLE not in tables:
        return []
    return [v for v in VIEWS if v is not SEND_SUMMARY or SENDS_TABLE in tables]


# -- the destination (thin shell) ---------------------------------------------------------------


def existing_tables(client, dataset: str) -> dict[str, set[str]]:
    """`{table: {column, ...}}` of the dataset, read from `information_schema`."""
    rows = client.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
        dataset,
    )
    tables: dict[str, set[str]] = {}
    for table, column in rows or ():
        tables.setdefault(table, set()).add(column)
    return tables


class ViewsError(BrazeSendsError):
    """Some reporting views could not be created (each named with the database's reason)."""


def create_views(pipeline: dlt.Pipeline) -> list[str]:
    """Create (or replace) every reporting view whose tables exist; returns their names.

    Raises:
        ViewsError: some views could not be created (the others were).
        Exception: the destination cannot be reached.
    """
    kind = getattr(pipeline.destination, "destination_type", "") or ""
    if not kind or kind.endswith(".filesystem"):
        logger.info("no reporting views: the destination is not a SQL database")
        return []
    created, failed = [], []
    with pipeline.sql_client() as client:
        dialect = Dialect(client.dataset_name, client.capabilities.escape_identifier)
        tables = existing_tables(client, client.dataset_name)
        for view in creatable(tables):
            try:
                _replace(client, dialect.table(view.name), view_sql(view, tables, dialect))
            except Exception as exc:  # noqa: BLE001 - try the others, then say which failed
                failed.append(f"{view.name}: {' '.join(str(exc).split())[:300]}")
            else:
                created.append(view.name)
    logger.info("reporting views created: %s", ", ".join(created) or "none yet")
    if failed:
        raise ViewsError("; ".join(failed))
    return created


def _replace(client, name: str, select: str) -> None:
    try:
        client.execute_sql(f"CREATE OR REPLACE VIEW {name} AS\n{select}")
    except Exception:  # noqa: BLE001 - e.g. PostgreSQL refusing a changed column type
        client.execute_sql(f"DROP VIEW IF EXISTS {name}")
        client.execute_sql(f"CREATE VIEW {name} AS\n{select}")


def refresh_views(pipeline: dlt.Pipeline) -> list[str]:
    """`create_views`, turning a failure into a warning: the loaded data is never at stake."""
    try:
        return create_views(pipeline)
    except Exception as exc:  # noqa: BLE001 - views are a convenience over safely loaded data
        logger.warning(
            "reporting views not created (%s). The data is loaded; the next run tries again, "
            "or run `braze-sends views` once the cause is fixed (e.g. a table or view of yours "
            "with the same name in the dataset).",
            " ".join(str(exc).split())[:1000],
        )
        return []

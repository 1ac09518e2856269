"""The data dictionary (`docs/data_dictionary.md`): every table, view and column, with its meaning.

Generated, so it cannot drift from what a run loads: the real pipeline loads the sandbox's
reference workspace (fixed seed and clock, every channel, control groups) into a temporary
DuckDB file; the tables and their columns come from the dlt schema it leaves, the views and their
columns from the destination. Meanings are hand-written here (views: `views.COLUMN_MEANINGS`).
A column without one is marked, and the test that keeps the file current fails on the mark.

    python -m braze_sends.dictionary docs/data_dictionary.md          # `make dictionary`
    python -m braze_sends.dictionary docs/data_dictionary.md --check  # exit 1 when stale
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dlt
import duckdb

from braze_sends.campaigns import CAMPAIGNS_TABLE, CONVERSION_METRICS
from braze_sends.settings import (
    BRAZE_REQUESTS_PER_HOUR,
    DAILY_TABLE,
    DATASET_NAME,
    SENDS_TABLE,
    VARIATION_TABLE,
)
from braze_sends.views import COLUMN_MEANINGS as VIEW_COLUMN_MEANINGS
from braze_sends.views import VIEWS

logger = logging.getLogger(__name__)

UNDOCUMENTED = "(no meaning written yet: add one in pipelines/braze_sends/dictionary.py)"
REFERENCE_NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
REFERENCE_SEED = 7

TABLE_MEANINGS = {
    VARIATION_TABLE: (
        "One row per send, day, channel and variation, as Braze reports it "
        "(`/sends/data_series`). Key (`campaign_id`, `send_id`, `date`, `channel`, "
        "`variation_name`); merged, so a re-pull updates rows. Control groups are rows too "
        "(`variation_name` = `Control Group`, `enrolled`, no send metrics). A metric column "
        "exists once some channel reported it; it is NULL for channels that do not report it."
    ),
    DAILY_TABLE: (
        "The day-level totals of each send (the day object's own keys). Key (`campaign_id`, "
        "`send_id`, `date`); merged."
    ),
    SENDS_TABLE: (
        "One row per registered pair with its window lifecycle (`braze-sends status` reads the "
        "same records). Key (`campaign_id`, `send_id`); merged."
    ),
    CAMPAIGNS_TABLE: (
        "One row per campaign with registered sends, from `/campaigns/details`: name, tags, "
        "channels, flags, and what each conversion event counts. Key `campaign_id`; merged; "
        "refreshed at most once per `campaigns_refresh_hours` (default 24) while the campaign "
        "has an open send."
    ),
    "_dlt_loads": "dlt: one row per load; join `_dlt_load_id` on `load_id` to date a row.",
    "_dlt_version": "dlt: every version of the dataset's schema.",
    "_dlt_pipeline_state": "dlt: the pipeline state (the registry of pairs), restored on a new "
    "machine.",
}

_IDENTITY = {
    "campaign_id": "the campaign's API identifier",
    "send_id": "the send's identifier (from the sending system or Braze)",
    "date": "the day, in the workspace time zone",
    "channel": "Braze's channel key: `email`, `ios_push`, `android_push`, `kindle_push`, "
    "`web_push`, `sms`, `whats_app`, `webhook`, `content_cards`, `trigger_in_app_message`, or "
    "any new one",
    "variation_name": "Braze's variation name (falls back to `variation_api_id`); "
    "`Control Group` for the control group",
    "variation_api_id": "Braze's id of the message variation",
    "pulled_at": "when these numbers were pulled from Braze",
    "_dlt_load_id": "the load that wrote the row (join `_dlt_loads.load_id`)",
    "_dlt_id": "dlt's unique row id",
}

METRIC_MEANINGS = {
    "sent": "messages sent",
    "delivered": "messages delivered",
    "undelivered": "push messages not delivered",
    "delivery_failed": "messages whose delivery failed (push, SMS)",
    "direct_opens": "push opens from the notification itself",
    "total_opens": "push opens, direct and influenced",
    "bounces": "bounces (email, push)",
    "body_clicks": "push body clicks",
    "opens": "email opens",
    "unique_opens": "email unique opens (counted over 7 days)",
    "clicks": "clicks (email, SMS, in-app messages)",
    "unique_clicks": "unique clicks (email, content cards)",
    "unsubscribes": "email unsubscribes",
    "reported_spam": "emails reported as spam",
    "machine_open": "email opens by machines (e.g. Apple Mail privacy protection)",
    "machine_amp_open": "AMP email opens by machines",
    "sent_to_carrier": "SMS handed to the carrier",
    "rejected": "SMS rejected by the carrier",
    "opt_out": "SMS opt-outs",
    "help": "SMS HELP replies",
    "failed": "WhatsApp messages that failed",
    "read": "WhatsApp messages read",
    "errors": "webhook errors",
    "total_clicks": "content card clicks",
    "total_dismissals": "content card dismissals",
    "total_impressions": "content card impressions",
    "unique_dismissals": "content card unique dismissals",
    "unique_impressions": "content card unique impressions",
    "impressions": "in-app message impressions",
    "first_button_clicks": "in-app message first-button clicks",
    "second_button_clicks": "in-app message second-button clicks",
    "unique_recipients": "unique recipients (Braze counts them at campaign level)",
    "enrolled": "users enrolled in the control group (control-group rows only)",
    "revenue": "revenue in USD",
    **{
        metric: f"conversions of event {letter} (what it counts: `campaigns.{metric}_label`)"
        for metric, letter in zip(CONVERSION_METRICS, "ABCD")
    },
    **{
        f"{metric}_by_send_time": f"conversions of event {letter} booked on the day the message "
        "was sent, not the day they happened"
        for metric, letter in zip(CONVERSION_METRICS, "ABCD")
    },
}
# Keys whose names carry a title chosen in Braze's composer: one column per title.
PATTERNS = (
    (
        re.compile(r"^carousel_slide_\d+_.+_click$"),
        "carousel_slide_<n>_<title>_click",
        "iOS push carousel: clicks on slide n titled <title> (one column per slide title seen)",
    ),
    (
        re.compile(r"^notif_button_\d+_.+_click$"),
        "notif_button_<n>_<title>_click",
        "iOS push: clicks on notification button n titled <title> (one column per title seen)",
    ),
)

TABLE_COLUMNS = {
    SENDS_TABLE: {
        "status": "`new`, `open`, `failed`, `final` or `expired` (README: the window lifecycle)",
        "sent_at": "when the send went out, as registered (NULL when not given)",
        "sent_date": "the send's date in the workspace time zone",
        "sent_date_source": "where `sent_date` comes from: `sent_at`, `data` (first active "
        "day) or `first_pull` (the day of the first pull that found nothing)",
        "window_closes_at": "when Braze may delete the send's analytics (send + 14 days)",
        "registered_at": "when the pair was first registered",
        "first_captured_at": "the first successful pull",
        "last_attempt_at": "the last request for the pair, successful or not",
        "last_pulled_at": "the last successful pull",
        "final_at": "when the send became `final` or `expired`",
        "days_loaded": "days of the window loaded so far",
        "loaded_from": "the first day loaded",
        "loaded_to": "the last day loaded",
        "last_error": "the last error (never the key); NULL after a successful pull",
        "last_error_at": "when `last_error` happened",
        "failures": "failed attempts in a row",
        "next_retry_at": "when a failed pair is asked again",
        "requests": "requests made for the pair so far",
    },
    CAMPAIGNS_TABLE: {
        "name": "the campaign's name",
        "description": "the campaign's description",
        "tags": "the campaign's tags, comma-separated",
        "channels": "the campaign's channels, comma-separated",
        "archived": "archived in Braze",
        "enabled": "enabled (active) in Braze",
        "draft": "a draft",
        "schedule_type": "how it is scheduled (e.g. `api_triggered`)",
        "teams": "the Braze teams it belongs to, comma-separated",
        "created_at": "when it was created",
        "updated_at": "when it was last edited",
        "first_sent": "its first message sent",
        "last_sent": "its last message sent, as of `pulled_at`",
        "conversion_behaviors": "Braze's `conversion_behaviors` as JSON text (entry 0 is event A)",
        "messages": "Braze's `messages` (variations by id: `channel`, `name`, ...) as JSON text",
        "pulled_at": "when these details were fetched from Braze",
        **{
            f"{metric}_label": f"what `{metric}` (event {letter}) counts, e.g. `Performs Custom "
            "Event: checkout_completed`; NULL when the campaign has fewer events"
            for metric, letter in zip(CONVERSION_METRICS, "ABCD")
        },
        **{
            f"{metric}_window_seconds": f"the conversion window of event {letter}, in seconds"
            for metric, letter in zip(CONVERSION_METRICS, "ABCD")
        },
    },
    "_dlt_loads": {
        "load_id": "the load's id (`_dlt_load_id` of its rows)",
        "schema_name": "the dlt schema loaded",
        "status": "0 when the load completed",
        "inserted_at": "when the load completed",
        "schema_version_hash": "the schema version it loaded with",
    },
    "_dlt_version": {
        "version": "the schema version",
        "engine_version": "dlt's schema engine version",
        "inserted_at": "when this version was stored",
        "schema_name": "the dlt schema",
        "version_hash": "the version's hash",
        "schema": "the schema itself (JSON)",
    },
    "_dlt_pipeline_state": {
        "version": "the state version",
        "engine_version": "dlt's state engine version",
        "pipeline_name": "the pipeline",
        "state": "the compressed state",
        "created_at": "when it was stored",
        "version_hash": "the state's hash",
    },
}
_LEADING = (
    "campaign_id",
    "send_id",
    "date",
    "channel",
    "variation_name",
    "variation_api_id",
    "status",
)
_DUCKDB_TYPES = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "DOUBLE": "double",
    "DATE": "date",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    meaning: str
    key: bool = False


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str  # "table" | "view"
    meaning: str
    columns: tuple[Column, ...]


def meaning(table: str, column: str) -> str:
    """A column's hand-written meaning (the undocumented mark when there is none)."""
    own = VIEW_COLUMN_MEANINGS if table in {v.name for v in VIEWS} else TABLE_COLUMNS.get(table, {})
    for source in (own, _IDENTITY, METRIC_MEANINGS):
        if column in source:
            return source[column]
    return UNDOCUMENTED


def _order(name: str) -> tuple[int, int, str]:
    if name.startswith("_dlt"):
        return (2, 0, name)
    if name in _LEADING:
        return (0, _LEADING.index(name), name)
    return (1, 0, name)


def table_relations(schema: dlt.Schema) -> list[Relation]:
    """The data tables (then dlt's own) with their columns, from the dlt schema."""
    names = sorted(t["name"] for t in schema.data_tables())
    names += sorted(t["name"] for t in schema.dlt_tables())
    relations = []
    for table in names:
        columns: list[Column] = []
        patterns_seen: set[str] = set()
        for name, column in sorted(
            schema.get_table_columns(table).items(), key=lambda item: _order(item[0])
        ):
            data_type = column.get("data_type") or "?"
            pattern = next((p for p in PATTERNS if p[0].match(name)), None)
            if pattern is not None:
                if pattern[1] not in patterns_seen:
                    patterns_seen.add(pattern[1])
                    columns.append(Column(pattern[1], data_type, pattern[2]))
                continue
            columns.append(
                Column(name, data_type, meaning(table, name), bool(column.get("primary_key")))
            )
        relations.append(
            Relation(table, "table", TABLE_MEANINGS.get(table, UNDOCUMENTED), tuple(columns))
        )
    return relations


def view_relations(con: duckdb.DuckDBPyConnection, dataset: str) -> list[Relation]:
    """The reporting views and their columns (in order), as the destination holds them."""
    relations = []
    for view in VIEWS:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [dataset, view.name],
        ).fetchall()
        columns = tuple(
            Column(name, _DUCKDB_TYPES.get(kind, kind.lower()), meaning(view.name, name))
            for name, kind in rows
        )
        relations.append(Relation(view.name, "view", view.description, columns))
    return relations


def render(relations: list[Relation]) -> str:
    """The dictionary as Markdown."""
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated by `make dictionary` (python -m braze_sends.dictionary) from the schema",
        "     of a sandbox load and the meanings in pipelines/braze_sends/dictionary.py and",
        "     views.py. Do not edit by hand: a test fails when this file is stale. -->",
        "",
        f"Dataset `{DATASET_NAME}` (the default; `--dataset` changes it). {_TYPES}",
        "Key columns are marked **key**. Metric columns are named exactly as Braze names them.",
        "",
        "| name | kind | what it is |",
        "| --- | --- | --- |",
    ]
    lines += [f"| [`{r.name}`](#{r.name}) | {r.kind} | {_cell(r.meaning)} |" for r in relations]
    for relation in relations:
        lines += [
            "",
            f"## {relation.name}",
            "",
            f"*{relation.kind}*: {relation.meaning}",
            "",
            "| column | type | meaning |",
            "| --- | --- | --- |",
        ]
        for column in relation.columns:
            key = " **key**" if column.key else ""
            lines.append(f"| `{column.name}`{key} | {column.data_type} | {_cell(column.meaning)} |")
    return "\n".join(lines) + "\n"


_TYPES = (
    "Types are dlt's: `text`, `bigint`, `double`, `bool`, `date`, `timestamp` (with time zone)."
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def generate() -> str:
    """Load the reference workspace into a temporary DuckDB file and render its dictionary."""
    from braze_sends.demo import load_frozen
    from braze_sends.runner import make_pipeline
    from braze_sends.sandbox import Catalog

    catalog = Catalog.demo(REFERENCE_NOW.date(), seed=REFERENCE_SEED)
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "reference.duckdb"
        pipeline = make_pipeline(
            pipeline_name="braze_sends_dictionary",
            destination=dlt.destinations.duckdb(str(db)),
            dataset_name=DATASET_NAME,
            pipelines_dir=str(Path(work) / "pipelines"),
        )
        load_frozen(pipeline, catalog, REFERENCE_NOW, requests_per_hour=BRAZE_REQUESTS_PER_HOUR)
        relations = table_relations(pipeline.default_schema)
        with duckdb.connect(str(db), read_only=True) as con:
            relations += view_relations(con, DATASET_NAME)
    return render(relations)


def main(argv: list[str] | None = None) -> int:
    """`make dictionary`: write the file; with `--check`, exit 1 when it is stale."""
    parser = argparse.ArgumentParser(
        prog="python -m braze_sends.dictionary", description=__doc__.splitlines()[0]
    )
    parser.add_argument("path", type=Path, help="the Markdown file, e.g. docs/data_dictionary.md")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    text = generate()
    if args.check:
        current = args.path.read_text() if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is stale: run `make dictionary`")
            return 1
        print(f"{args.path} is up to date")
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text)
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

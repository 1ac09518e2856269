"""`braze-sends demo`: the whole job on embedded defaults, against the built-in Braze sandbox.

Starts the sandbox in-process on a free loopback port, writes its catalog as a sends file, runs
the real pipeline (HTTP, retries, flattening, lifecycle, DuckDB merge) into `braze_sends.duckdb`
and reports what landed. The demo uses its own pipeline name, so its registry of sandbox pairs
never mixes with a real workspace's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb

from braze_sends import report
from braze_sends.runner import RunResult, make_pipeline, run_pipeline
from braze_sends.sandbox import DEMO_API_KEY, Catalog, SandboxClock, SandboxServer
from braze_sends.sends_file import SendPair
from braze_sends.settings import DAILY_TABLE, DATASET_NAME, SENDS_TABLE, VARIATION_TABLE

DEMO_PIPELINE = "braze_sends_demo"

TOP_SENDS_SQL = f"""
WITH v AS (
    SELECT campaign_id, send_id, sum(sent) AS sent, sum(delivered) AS delivered
    FROM {DATASET_NAME}.{VARIATION_TABLE} GROUP BY ALL
), d AS (
    SELECT campaign_id, send_id, sum(conversions) AS conversions, sum(revenue) AS revenue
    FROM {DATASET_NAME}.{DAILY_TABLE} GROUP BY ALL
)
SELECT v.campaign_id, v.send_id, v.sent, v.delivered, d.conversions, round(d.revenue, 2)
FROM v JOIN d USING (campaign_id, send_id)
ORDER BY v.sent DESC NULLS LAST, v.campaign_id, v.send_id
LIMIT 5
"""


def load_frozen(
    pipeline: dlt.Pipeline, catalog: Catalog, now: datetime, **source_args: Any
) -> RunResult:
    """Load every pair of `catalog` sent by `now` from a sandbox whose clock stands at `now`: the
    same data on every machine (the committed schema and data dictionary are made from it)."""
    pairs = [SendPair(c, s, at) for c, s, at in catalog.pairs() if at <= now]
    with SandboxServer(catalog, clock=SandboxClock(now, frozen=True)) as server:
        return run_pipeline(
            pipeline,
            pairs=pairs,
            api_key=DEMO_API_KEY,
            base_url=server.url,
            now=now,
            timezone="UTC",
            **source_args,
        )


def run_demo(*, db: str, pipelines_dir: str | None = None, seed: int = 7) -> str:
    """Load the sandbox's catalog into `db` and return the report to print."""
    now = datetime.now(UTC)
    catalog = Catalog.demo(now.date(), seed=seed)
    sends_file = Path(db).with_name("demo_sends.csv")
    catalog.write_sends_file(sends_file, as_of=now)
    with SandboxServer(catalog) as server:
        pipeline = make_pipeline(
            pipeline_name=DEMO_PIPELINE,
            destination=dlt.destinations.duckdb(str(Path(db).resolve())),
            dataset_name=DATASET_NAME,
            pipelines_dir=pipelines_dir,
        )
        result = run_pipeline(
            pipeline, sends_file=str(sends_file), api_key=DEMO_API_KEY, base_url=server.url
        )
    with duckdb.connect(db, read_only=True) as con:
        counts = {
            name: con.sql(f"SELECT count(*) FROM {DATASET_NAME}.{name}").fetchone()[0]
            for name in (VARIATION_TABLE, DAILY_TABLE, SENDS_TABLE)
        }
        top = con.sql(TOP_SENDS_SQL).fetchall()
        statuses = dict(
            con.sql(
                f"SELECT status, count(*) FROM {DATASET_NAME}.{SENDS_TABLE} GROUP BY 1"
            ).fetchall()
        )
    return "\n".join(
        [
            report.run_summary(result.summary, pending_loaded=result.pending_loaded),
            "",
            f"Sandbox pairs written to {sends_file}.",
            report.demo_report(counts, top, statuses, db),
        ]
    )

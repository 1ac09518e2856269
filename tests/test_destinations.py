"""The same pipeline on DuckDB, PostgreSQL and a Delta lake: the same tables and numbers, reruns
that merge, new metric keys as new columns, a killed run completed, the destination chosen by the
CLI or by dlt's configuration.

PostgreSQL is the server on this machine (127.0.0.1:5432, trust auth, database `test`); every
test loads into a schema of its own and drops it afterwards. The Delta lake is a folder of the
test, read back with the `deltalake` package and, through Arrow, with DuckDB (DuckDB's own
`delta_scan` needs its `delta` extension, which this machine cannot install: see the README).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from dlt.common.exceptions import MissingDependencyException
from psycopg2 import sql

from braze_sends import SendPair, braze_sends, registry, schema
from braze_sends import warehouse as warehouse_module
from braze_sends.columns import DAILY_KEY, IDENTITY_TYPES, SENDS_KEY, VARIATION_KEY
from braze_sends.destinations import (
    LAKE_TABLE_FORMAT,
    missing_dependency_error,
    prepare_source,
    resolve_target,
)
from braze_sends.errors import ConfigurationError
from braze_sends.runner import make_pipeline, run_pipeline
from braze_sends.sandbox import DEMO_API_KEY, Catalog, SandboxServer
from braze_sends.settings import DAILY_TABLE, SENDS_TABLE, VARIATION_TABLE
from braze_sends.warehouse import finished_pairs
from tests.conftest import NOW, Loader, run_cli

# Trust auth accepts any password; dlt's PostgreSQL credentials insist on having one.
PG_URL = "postgresql://postgres:postgres@127.0.0.1:5432/test"
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
TABLES = {VARIATION_TABLE: VARIATION_KEY, DAILY_TABLE: DAILY_KEY, SENDS_TABLE: SENDS_KEY}
NOT_SUMMED = {*IDENTITY_TYPES, "_dlt_load_id", "_dlt_id"}
NUMERIC = {"BIGINT", "DOUBLE", "bigint", "double precision", "int64", "double"}


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped (with dlt's staging schema) after the test."""
    name = f"braze_test_{uuid.uuid4().hex[:10]}"
    try:
        psycopg2.connect(PG_URL).close()
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc}); start it: {PG_START}")
    yield name
    con = psycopg2.connect(PG_URL)
    try:
        with con, con.cursor() as cur:
            for dataset in (name, f"{name}_staging"):
                cur.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(dataset))
                )
    finally:
        con.close()


class Warehouse:
    """One destination of a test: its pipeline, and its tables read back with its own engine."""

    def __init__(self, kind: str, tmp_path: Path, pg_schema: str) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.dataset = pg_schema if kind == "postgres" else "braze"
        self.db = tmp_path / "braze_sends.duckdb"
        self.lake = tmp_path / "lake"

    def pipeline(self) -> dlt.Pipeline:
        destination = {
            "duckdb": lambda: dlt.destinations.duckdb(str(self.db)),
            "postgres": lambda: dlt.destinations.postgres(PG_URL),
            "delta": lambda: dlt.destinations.filesystem(self.lake.as_uri()),
        }[self.kind]()
        return make_pipeline(
            pipeline_name=f"braze_sends_{self.kind}",
            destination=destination,
            dataset_name=self.dataset,
            pipelines_dir=str(self.tmp_path / "pipelines"),
        )

    def delta_table(self, table: str) -> DeltaTable:
        return DeltaTable(str(self.lake / self.dataset / table))

    def query(self, query: str, table: str) -> list[tuple[Any, ...]]:
        """Run `query`, where `{t}` stands for `table`, on this warehouse's engine."""
        if self.kind == "duckdb":
            with duckdb.connect(str(self.db), read_only=True) as con:
                return con.execute(query.format(t=f"{self.dataset}.{table}")).fetchall()
        if self.kind == "postgres":
            con = psycopg2.connect(PG_URL)
            try:
                with con.cursor() as cur:
                    cur.execute(query.format(t=f'"{self.dataset}"."{table}"'))
                    return cur.fetchall()
            finally:
                con.close()
        # The Delta lake: read by `deltalake`, handed to DuckDB as Arrow.
        with duckdb.connect() as con:
            con.register("delta_table", self.delta_table(table).to_pyarrow_table())
            return con.execute(query.format(t="delta_table")).fetchall()

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> type, as this warehouse names it."""
        if self.kind == "delta":
            arrow_schema = pa.schema(self.delta_table(table).schema().to_arrow())
            return {field.name: str(field.type) for field in arrow_schema}
        where = "table_schema = '{schema}' AND table_name = '{table}'"
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            + where.format(schema=self.dataset, table=table),
            table,
        )
        return dict(rows)

    def aggregates(self, table: str) -> dict[str, Any]:
        """Row count, distinct keys and the sum of every metric; `sends`: statuses, days loaded."""
        numeric = sorted(
            name
            for name, kind in self.columns(table).items()
            if name not in NOT_SUMMED and kind in NUMERIC
        )
        if table == SENDS_TABLE:  # a send's bookkeeping (requests made...) grows every run
            numeric = ["days_loaded"]
        key = ", ".join(TABLES[table])
        sums = ", ".join(f"sum({name})" for name in numeric)
        row = self.query(
            f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {key} FROM {{t}}) k)"
            + (f", {sums}" if sums else "")
            + " FROM {t}",
            table,
        )[0]
        found = {"rows": row[0], "distinct keys": row[1]}
        for name, total in zip(numeric, row[2:]):
            if total is not None:  # a column no row has a value in (a lake has no such column)
                found[f"sum({name})"] = round(float(total), 6)
        if table == SENDS_TABLE:
            for status, count in self.query("SELECT status, count(*) FROM {t} GROUP BY 1", table):
                found[f"status {status}"] = count
        return found


def everything(warehouses: list[Warehouse]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each warehouse's aggregates of the three tables."""
    return {w.kind: {table: w.aggregates(table) for table in TABLES} for w in warehouses}


def assert_same_everywhere(found: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    reference = found["duckdb"]
    for kind, tables in found.items():
        for table, aggregates in tables.items():
            assert aggregates == reference[table], (kind, table)
            assert aggregates["rows"] == aggregates["distinct keys"], (kind, table)  # no duplicate
    return reference


@pytest.fixture
def warehouses(tmp_path: Path, pg_schema: str) -> list[Warehouse]:
    return [Warehouse(kind, tmp_path, pg_schema) for kind in ("duckdb", "postgres", "delta")]


def test_duckdb_postgres_and_delta_hold_the_same_numbers_and_reruns_merge(
    warehouses, loader, sends_file, sandbox, catalog
):
    pipelines = {w.kind: w.pipeline() for w in warehouses}
    for kind, pipeline in pipelines.items():
        result = loader.run(pipeline, sends_file=str(sends_file))
        assert result.failed == 0 and result.summary["pulled"] > 0, kind
    first = assert_same_everywhere(everything(warehouses))
    assert first[VARIATION_TABLE]["rows"] > 1000 and first[DAILY_TABLE]["rows"] > 100
    assert first[SENDS_TABLE]["rows"] == len([p for p in catalog.pairs() if p[2] <= NOW])
    assert first[VARIATION_TABLE]["sum(sent)"] > 0 and first[DAILY_TABLE]["sum(revenue)"] > 0

    for pipeline in pipelines.values():  # the same data again: nothing changes, nothing doubles
        loader.run(pipeline)
    assert assert_same_everywhere(everything(warehouses)) == first

    sandbox.clock.set(NOW + timedelta(days=1))  # Braze restates: late opens on earlier days
    for pipeline in pipelines.values():
        loader.run(pipeline, now=NOW + timedelta(days=1))
    restated = assert_same_everywhere(everything(warehouses))
    assert restated[VARIATION_TABLE]["sum(opens)"] > first[VARIATION_TABLE]["sum(opens)"]
    assert restated[VARIATION_TABLE]["rows"] >= first[VARIATION_TABLE]["rows"]

    # The lake's tables are Delta tables, merged (upsert) rather than appended to.
    lake = warehouses[2]
    for table in TABLES:
        assert pipelines["delta"].default_schema.tables[table]["table_format"] == "delta"
        operations = [entry["operation"] for entry in lake.delta_table(table).history()]
        assert "MERGE" in operations, (table, operations)


def test_every_destination_tells_archived_sends_given_again_from_new_ones(
    warehouses, loader, sandbox, catalog
):
    """Archived pairs live only in the `sends` table: each destination answers for them."""
    pairs = [SendPair(c, s, at) for c, s, at in catalog.pairs() if at <= NOW]
    keys = {(p.campaign_id, p.send_id) for p in pairs}
    new = SendPair(pairs[0].campaign_id, "a-new-send's-id", NOW + timedelta(days=62))  # quoted
    for w in warehouses:
        pipeline = w.pipeline()
        loader.run(pipeline, pairs=pairs, now=NOW)
        loader.run(pipeline, now=NOW + timedelta(days=30))  # all final or expired
        loader.run(pipeline, now=NOW + timedelta(days=61), max_requests=0)  # archived
        state = pipeline.state["sources"]["braze_sends"]
        assert registry.load_records(state) == {} and registry.ARCHIVE_KEY not in state, w.kind
        assert finished_pairs(pipeline, {*keys, ("c", "x")}) == keys, w.kind
        with pytest.MonkeyPatch.context() as patch:  # many queries, each naming one send id
            patch.setattr(warehouse_module, "SENDS_PER_QUERY", 1)
            assert finished_pairs(pipeline, {*keys, ("c", "x")}) == keys, w.kind
        sandbox.clock.set(NOW + timedelta(days=62))
        result = loader.run(pipeline, pairs=[*pairs, new], now=NOW + timedelta(days=62))
        sandbox.clock.set(NOW)
        assert result.summary["registered"] == 1, w.kind  # only the new send
        assert finished_pairs(pipeline, {(new.campaign_id, new.send_id)}) == set(), w.kind  # open
        assert result.summary["known"] == len(pairs) + 1, w.kind
        rows = w.query("SELECT status, count(*) FROM {t} GROUP BY 1", SENDS_TABLE)
        assert sum(n for status, n in rows if status in ("final", "expired")) == len(pairs)


def test_every_destination_keeps_the_contracts_column_types(warehouses, loader, sends_file):
    for warehouse in warehouses:
        loader.run(warehouse.pipeline(), sends_file=str(sends_file))
    duck, pg, lake = (w.columns(VARIATION_TABLE) for w in warehouses)
    assert (duck["date"], pg["date"], lake["date"]) == ("DATE", "date", "date32[day]")
    assert (duck["sent"], pg["sent"], lake["sent"]) == ("BIGINT", "bigint", "int64")
    assert (duck["revenue"], pg["revenue"], lake["revenue"]) == (
        "DOUBLE",
        "double precision",
        "double",
    )
    assert (duck["pulled_at"], pg["pulled_at"], lake["pulled_at"]) == (
        "TIMESTAMP WITH TIME ZONE",
        "timestamp with time zone",
        "timestamp[us, tz=UTC]",
    )
    sends = [w.columns(SENDS_TABLE) for w in warehouses]
    assert [c["last_pulled_at"] for c in sends] == [
        "TIMESTAMP WITH TIME ZONE",
        "timestamp with time zone",
        "timestamp[us, tz=UTC]",
    ]
    assert [c["sent_date"] for c in sends] == ["DATE", "date", "date32[day]"]


def test_a_new_metric_key_becomes_a_column_on_every_destination(warehouses, loader, catalog):
    pipelines = {w.kind: w.pipeline() for w in warehouses}
    first_pairs = [SendPair(c, s, at) for c, s, at in catalog.pairs() if at <= NOW][:5]
    for pipeline in pipelines.values():
        assert loader.run(pipeline, pairs=first_pairs).failed == 0
    campaign = next(iter(catalog.campaigns))
    catalog.add_send(
        campaign_id=campaign,
        send_id="send_rcs_1",
        sent_at=NOW - timedelta(days=2),
        channels={"rcs": ["sent", "delivered", "read"]},
        extra_metrics={"brand_new_count": "int"},
    )
    new_pair = SendPair(campaign, "send_rcs_1", NOW - timedelta(days=2))
    for kind, pipeline in pipelines.items():
        result = loader.run(pipeline, pairs=[new_pair])
        assert result.failed == 0 and result.summary["pulled"] >= 1, kind

    types = [w.columns(VARIATION_TABLE).get("brand_new_count") for w in warehouses]
    assert types == ["DOUBLE", "double precision", "double"]  # undocumented numbers: double
    found = assert_same_everywhere(everything(warehouses))
    assert found[VARIATION_TABLE]["sum(brand_new_count)"] > 0
    rcs = [
        w.query("SELECT count(*), sum(sent) FROM {t} WHERE channel = 'rcs'", VARIATION_TABLE)[0]
        for w in warehouses
    ]
    assert rcs[0][0] > 0 and all(row == rcs[0] for row in rcs)


def test_postgres_loads_a_killed_runs_package_first_then_runs(tmp_path, pg_schema, loader):
    """A run killed after normalize (its package never loaded) is completed by the next run."""
    pg = Warehouse("postgres", tmp_path, pg_schema)
    pipeline = pg.pipeline()
    first = [SendPair(c, s, at) for c, s, at in loader.server.catalog.pairs() if at <= NOW][:6]
    source = braze_sends(
        pairs=first, api_key=DEMO_API_KEY, base_url=loader.server.url, now=NOW, workers=2
    )
    pipeline.extract(schema.pin(prepare_source(source, pipeline.destination)))
    pipeline.normalize()  # ... and the process dies here
    assert pipeline.has_pending_data

    result = loader.run(pg.pipeline())  # a new process: same pipeline name and folder
    assert result.pending_loaded and not pg.pipeline().has_pending_data
    found = pg.aggregates(SENDS_TABLE)
    assert found["rows"] == found["distinct keys"] == 6 and found.get("status open", 0) > 0
    variation = pg.aggregates(VARIATION_TABLE)
    assert variation["rows"] == variation["distinct keys"] > 0
    loaded = pg.query("SELECT count(*) FROM {t} WHERE status = 0", "_dlt_loads")[0][0]
    assert loaded == 2  # the killed run's package, then this run's


def test_the_cli_and_dlt_config_choose_destination_and_dataset(tmp_path, pg_schema):
    """`--destination postgres --dataset X` with dlt's env credentials; the lake from config."""
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        3, start=now.date() - timedelta(days=5), days=5, sends=6, campaigns=2
    )
    sends = tmp_path / "sends.csv"
    pairs = catalog.write_sends_file(sends, as_of=now)
    with SandboxServer(catalog) as server:
        env = {"SOURCES__BRAZE__API_KEY": DEMO_API_KEY, "SOURCES__BRAZE__BASE_URL": server.url}
        pg_env = {**env, "DESTINATION__POSTGRES__CREDENTIALS": PG_URL}
        done = run_cli(
            "run",
            "--sends",
            str(sends),
            "--destination",
            "postgres",
            "--dataset",
            pg_schema,
            "--pipelines-dir",
            str(tmp_path / "pipelines"),
            env=pg_env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        pg = Warehouse("postgres", tmp_path, pg_schema)
        assert pg.aggregates(SENDS_TABLE)["rows"] == pairs
        assert not (tmp_path / "braze_sends.duckdb").exists()

        # A new machine (no local state): `status` restores the registry from PostgreSQL.
        status = run_cli(
            "status",
            "--json",
            "--destination",
            "postgres",
            "--dataset",
            pg_schema,
            "--pipelines-dir",
            str(tmp_path / "new_machine"),
            env=pg_env,
            cwd=tmp_path,
        )
        assert status.returncode in (0, 4), status.stderr
        assert sum(json.loads(status.stdout)["counts"].values()) == pairs

        # The lake, chosen in .dlt/config.toml with dlt's own keys; no flag on the command line.
        project = tmp_path / "project"
        (project / ".dlt").mkdir(parents=True)
        (project / ".dlt" / "config.toml").write_text(
            "[pipelines.braze_sends]\n"
            'destination_type = "filesystem"\n'
            'dataset_name = "braze_lake"\n\n'
            "[destination.filesystem]\n"
            f'bucket_url = "{(tmp_path / "lake").as_uri()}"\n'
        )
        done = run_cli(
            "run",
            "--sends",
            str(sends),
            "--pipelines-dir",
            str(tmp_path / "p2"),
            env=env,
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
    sends_table = DeltaTable(str(tmp_path / "lake" / "braze_lake" / SENDS_TABLE))
    assert sends_table.to_pyarrow_table().num_rows == pairs
    assert not (project / "braze_sends.duckdb").exists()


def test_the_destination_comes_from_the_flag_then_dlt_config_then_the_default(monkeypatch):
    default = resolve_target("braze_sends")
    assert default.destination.destination_name == "duckdb" and default.dataset_name == "braze"
    monkeypatch.setenv("PIPELINES__BRAZE_SENDS__DESTINATION_TYPE", "postgres")
    monkeypatch.setenv("PIPELINES__BRAZE_SENDS__DATASET_NAME", "analytics")
    configured = resolve_target("braze_sends")
    assert configured.destination.destination_name == "postgres"
    assert configured.dataset_name == "analytics"
    flagged = resolve_target("braze_sends", "filesystem", "lake")
    assert flagged.destination.destination_name == "filesystem" and flagged.dataset_name == "lake"
    monkeypatch.setenv("DESTINATION_TYPE", "motherduck")  # dlt's top level: for any pipeline
    assert resolve_target("other_pipeline").destination.destination_name == "motherduck"


def test_an_unknown_destination_or_missing_credentials_say_what_to_set(tmp_path):
    with pytest.raises(ConfigurationError, match="unknown destination 'postgress'"):
        make_pipeline(destination="postgress", pipelines_dir=str(tmp_path))
    pipeline = make_pipeline(destination="postgres", pipelines_dir=str(tmp_path))
    with pytest.raises(ConfigurationError, match="DESTINATION__POSTGRES__CREDENTIALS"):
        run_pipeline(pipeline, max_requests=0)
    missing = MissingDependencyException("ClickHouse client", ["clickhouse-driver"])
    error = missing_dependency_error(missing, resolve_target("p", "clickhouse").destination)
    assert "the clickhouse destination needs" in str(error)
    assert "uv sync --extra clickhouse" in str(error)


def test_plain_files_are_never_written_to_a_lake(tmp_path, sandbox):
    """Without Delta, dlt's filesystem merge would be an append: every table must be Delta."""
    loader = Loader(tmp_path, sandbox)
    lake = dlt.destinations.filesystem((tmp_path / "lake").as_uri())
    pipeline = loader.pipeline("braze_lake", destination=lake)
    pair = next(SendPair(c, s, at) for c, s, at in sandbox.catalog.pairs() if at <= NOW)
    loader.run(pipeline, pairs=[pair])
    loader.run(pipeline)
    for table in TABLES:
        hints = pipeline.default_schema.tables[table]
        assert hints["table_format"] == LAKE_TABLE_FORMAT
        assert hints.get("x-merge-strategy") == "upsert"
        assert (tmp_path / "lake" / "braze" / table / "_delta_log").is_dir()
    rows = DeltaTable(str(tmp_path / "lake" / "braze" / DAILY_TABLE)).to_pyarrow_table()
    keys = {(r["campaign_id"], r["send_id"], r["date"]) for r in rows.to_pylist()}
    assert len(keys) == rows.num_rows > 0

"""The data contract as dlt schema files: pinned column types, the schema contract, `schemas/`.

- **Pinned types** (the import schema): the fixed columns of the three tables and every metric
  Braze documents, typed by the same code that types each batch (`columns.py` through
  `tables.py`'s hints), so the files can never disagree with what a run loads. Every run applies
  them before extracting: the tables have their documented shape on every destination from the
  first load on (`date` DATE, counts BIGINT, `revenue` DOUBLE, timestamps with time zone).
- **The contract**: new columns may appear (Braze adds metric keys), a column's type may not
  change (`data_type: freeze`): a run that would change one fails before anything is loaded,
  with a `SchemaContractError` that names the column, instead of dlt silently retyping it in its
  schema (and the load then failing, or the warehouse and the schema disagreeing).
- **The files** under `schemas/`, committed and checked by the tests: `import/` is the pinned
  schema rendered from code, `export/` is the schema dlt exports after loading the sandbox's
  canonical data into DuckDB. `make schema` (`python -m braze_sends.schema`) rewrites both;
  `--check` tells what differs.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
import tempfile
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from dlt.common.normalizers.typing import TNormalizersConfig
from dlt.common.schema import Schema, TTableSchema
from dlt.common.schema.exceptions import DataValidationError
from dlt.common.schema.typing import TSchemaContractDict
from dlt.common.schema.utils import new_table
from dlt.extract import DltSource

from braze_sends.columns import (
    COUNT_METRICS,
    DAILY_KEY,
    VARIATION_KEY,
    MetricKind,
    documented_kind,
)
from braze_sends.errors import BrazeSendsError
from braze_sends.settings import DAILY_TABLE, PIPELINE_NAME, SENDS_TABLE, VARIATION_TABLE
from braze_sends.tables import TableBuffer, sends_rows

# New tables and columns may appear; no column may change its type.
CONTRACT: TSchemaContractDict = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}

# The day-level keys Braze documents (a day object's totals), and those of a variation object.
CONVERSIONS = tuple(
    f"conversions{n}{suffix}" for n in ("", "1", "2", "3") for suffix in ("", "_by_send_time")
)
DAY_METRICS = (*CONVERSIONS, "unique_recipients", "revenue")
VARIATION_METRICS = (*CONVERSIONS, "revenue", *sorted(COUNT_METRICS - {*CONVERSIONS}))

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_FILE = f"{PIPELINE_NAME}.schema.yaml"
# Keys of an exported schema that count its revisions rather than describe its content.
REVISION_KEYS = ("version", "version_hash", "previous_hashes")

NORMALIZERS: TNormalizersConfig = {
    "names": "snake_case",
    "json": {
        "module": "dlt.common.normalizers.json.relational",
        "config": {"max_nesting": 0, "root_key_propagation": False},
    },
}

# The canonical data of the exported schema: the sandbox's workspace, every channel, seed 11.
CANONICAL_NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
CANONICAL_SEED = 11


class SchemaContractError(BrazeSendsError):
    """A run would have changed the type of a stored column; nothing was loaded."""


def metric_kinds(names: tuple[str, ...]) -> dict[str, MetricKind]:
    """Each documented metric's kind, as `columns.documented_kind` decides it."""
    kinds = {name: documented_kind(name) for name in names}
    unknown = [name for name, kind in kinds.items() if kind is None]
    if unknown:
        raise ValueError(f"not documented metrics in columns.py: {unknown}")
    return kinds  # type: ignore[return-value]


def pinned_tables() -> dict[str, TTableSchema]:
    """The three tables with their fixed columns and documented metrics, as runs hint them."""
    variation = TableBuffer(VARIATION_TABLE, VARIATION_KEY).column_hints(
        metric_kinds(VARIATION_METRICS)
    )
    daily = TableBuffer(DAILY_TABLE, DAILY_KEY).column_hints(metric_kinds(DAY_METRICS))
    sends_item = next(sends_rows([{"campaign_id": "", "send_id": ""}], "rows"))
    sends = sends_item.meta.hints["columns"]
    tables = {}
    for name, columns in ((VARIATION_TABLE, variation), (DAILY_TABLE, daily), (SENDS_TABLE, sends)):
        tables[name] = new_table(
            name,
            write_disposition="merge",
            columns=[{**column, "name": column_name} for column_name, column in columns.items()],
        )
    return tables


def import_schema() -> Schema:
    """The pinned schema: the three tables, the contract, the source's normalizer settings."""
    # as the `braze_sends` source sets them: no nested tables, no root key propagation
    schema = Schema(PIPELINE_NAME, normalizers=deepcopy(NORMALIZERS))
    for table in pinned_tables().values():
        schema.update_table(table)
    schema.set_schema_contract(CONTRACT)
    return schema


def pin(source: DltSource) -> DltSource:
    """Apply the pinned tables and the contract to `source` (dlt merges them into its schema)."""
    for table in import_schema().tables.values():
        if table["name"] in (VARIATION_TABLE, DAILY_TABLE, SENDS_TABLE):
            source.schema.update_table(deepcopy(table))
    source.schema_contract = CONTRACT
    return source


def contract_error(exc: DataValidationError) -> SchemaContractError:
    """A contract violation, said with the column and what to do."""
    where = f"column `{exc.column_name}` of table `{exc.table_name}`"
    if exc.schema_entity == "data_type":
        existing = ((exc.table_schema or {}).get("columns") or {}).get(exc.column_name) or {}
        return SchemaContractError(
            f"{where} is {existing.get('data_type', 'stored')} but this run's data would change "
            "its type, and the schema contract refuses silent type changes. Nothing was loaded; "
            "the pairs are pulled again by the next run. If Braze changed this metric's type, "
            "decide its type in columns.py and run `make schema`; to keep the data of both "
            "types, first rename the stored column in the warehouse and drop it from the "
            f"pipeline's schema. dlt: {exc}"
        )
    return SchemaContractError(f"{where}: the schema contract refused it. dlt: {exc}")


def import_yaml() -> str:
    """The import schema file's content."""
    return import_schema().to_pretty_yaml(remove_defaults=True)


def export_yaml() -> str:
    """The schema dlt exports after loading the sandbox's canonical data into DuckDB."""
    import dlt

    from braze_sends.demo import load_frozen
    from braze_sends.runner import make_pipeline
    from braze_sends.sandbox import Catalog

    catalog = Catalog.generate(
        CANONICAL_SEED,
        start=CANONICAL_NOW.date() - timedelta(days=11),
        days=12,
        sends=40,
        campaigns=8,
    )
    with tempfile.TemporaryDirectory() as work:
        export = Path(work) / "export"
        pipeline = make_pipeline(
            pipeline_name=PIPELINE_NAME,
            destination=dlt.destinations.duckdb(str(Path(work) / "canonical.duckdb")),
            pipelines_dir=str(Path(work) / "pipelines"),
            export_schema_path=str(export),
        )
        # one worker: one order of responses, so one order of columns
        load_frozen(pipeline, catalog, CANONICAL_NOW, workers=1)
        return (export / SCHEMA_FILE).read_text()


def content(text: str) -> dict[str, Any]:
    """A schema file's content without its revision counters."""
    document = yaml.safe_load(text)
    for key in REVISION_KEYS:
        document.pop(key, None)
    return document


def expected_files() -> dict[str, str]:
    """Each file under `schemas/` and the content it must have."""
    return {f"import/{SCHEMA_FILE}": import_yaml(), f"export/{SCHEMA_FILE}": export_yaml()}


def differences(schemas_dir: Path, expected: dict[str, str]) -> list[str]:
    """A unified diff per committed file that differs from `expected` in content."""
    diffs = []
    for name, want in expected.items():
        path = schemas_dir / name
        have = path.read_text() if path.exists() else ""
        if not have or content(have) != content(want):
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        have.splitlines(keepends=True),
                        want.splitlines(keepends=True),
                        fromfile=f"{path} (committed)",
                        tofile=f"{path} (from the code)",
                    )
                )
            )
    return diffs


def main(argv: list[str] | None = None) -> int:
    """`make schema`: write the schema files; with `--check`, exit 1 when they are stale."""
    parser = argparse.ArgumentParser(
        prog="python -m braze_sends.schema", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dir", type=Path, default=SCHEMAS_DIR, help="default %(default)s")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    expected = expected_files()
    if args.check:
        diffs = differences(args.dir, expected)
        for diff in diffs:
            print(diff)
        print("schema files are stale: run `make schema`" if diffs else "schema files up to date")
        return 1 if diffs else 0
    for name, text in expected.items():
        path = args.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

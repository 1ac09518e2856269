"""Where the tables land: the destination and dataset of a pipeline, and what each destination needs.

- **Which destination**: `--destination` on the command line, else dlt's own pipeline setting
  `destination_type` (`[pipelines.braze_sends]` in `.dlt/config.toml`, or the environment
  variable `PIPELINES__BRAZE_SENDS__DESTINATION_TYPE`), else DuckDB. Any dlt destination works,
  by type (`postgres`, `filesystem`, `bigquery`, ...) or by a name configured with
  `[destination.<name>] destination_type = "..."`.
- **Which dataset** (schema, or folder on a lake): `--dataset`, else dlt's `dataset_name`, else
  `braze`.
- **Credentials and options** stay dlt's: `[destination.<name>]` in `.dlt/secrets.toml`, or
  `DESTINATION__<NAME>__CREDENTIALS`, `DESTINATION__FILESYSTEM__BUCKET_URL`, ...
- **A lake**: on dlt's filesystem destination every table is written as a Delta table, where dlt
  merges by upsert on the primary key. Plain files cannot merge: dlt would silently append, and
  every rerun would duplicate the restated days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlt.common.configuration import known_sections, resolve_configuration
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.exceptions import MissingDependencyException
from dlt.extract import DltSource
from dlt.pipeline.configuration import PipelineConfiguration

from braze_sends.errors import ConfigurationError
from braze_sends.settings import DATASET_NAME

DEFAULT_DESTINATION = "duckdb"
# Every table on a filesystem destination is a Delta table, merged by upsert (the SQL
# destinations' delete-insert does not exist there).
LAKE_TABLE_FORMAT = "delta"
LAKE_MERGE = {"disposition": "merge", "strategy": "upsert"}
FILESYSTEM = "dlt.destinations.filesystem"

# The extra to install for each destination this project documents (pyproject.toml).
EXTRAS = {
    "postgres": "postgres",
    "filesystem": "delta",
    "bigquery": "bigquery",
    "snowflake": "snowflake",
    "databricks": "databricks",
    "clickhouse": "clickhouse",
    "motherduck": "motherduck",
}


@dataclass(frozen=True)
class Target:
    """A pipeline's destination (a dlt reference or instance) and dataset name."""

    destination: Any
    dataset_name: str


def resolve_target(
    pipeline_name: str, destination: Any = None, dataset_name: str | None = None
) -> Target:
    """The destination and dataset: given ones first, then dlt's pipeline config, then defaults.

    dlt's own lookup decides where a setting is found: `[pipelines.<pipeline_name>]`, then
    `[pipelines]`, then the top level of `.dlt/config.toml`, and the matching environment
    variables (`PIPELINES__<PIPELINE_NAME>__DESTINATION_TYPE`, ..., `DESTINATION_TYPE`).

    Raises:
        ConfigurationError: the destination is not a dlt destination nor a configured name.
    """
    if destination is None or dataset_name is None:
        config = resolve_configuration(
            PipelineConfiguration(pipeline_name=pipeline_name),
            sections=(known_sections.PIPELINES, pipeline_name),
        )
        destination = destination or config.destination_type
        dataset_name = dataset_name or config.dataset_name
    destination = destination or DEFAULT_DESTINATION
    if isinstance(destination, str):
        try:
            destination = Destination.from_reference(destination)
        except UnknownDestinationModule:
            raise ConfigurationError(
                f"unknown destination {destination!r}: give a dlt destination type (duckdb, "
                "postgres, filesystem, bigquery, snowflake, databricks, clickhouse, motherduck, "
                '...) or a name configured with [destination.<name>] destination_type = "..."'
            ) from None
    return Target(destination=destination, dataset_name=dataset_name or DATASET_NAME)


def is_lake(destination: Any) -> bool:
    """Whether `destination` is dlt's filesystem destination (a local folder or a bucket)."""
    return getattr(destination, "destination_type", None) == FILESYSTEM


def prepare_source(source: DltSource, destination: Any) -> DltSource:
    """Give `source` what `destination` needs: on a lake, Delta tables merged by upsert."""
    if is_lake(destination):
        for resource in source.resources.values():
            resource.apply_hints(table_format=LAKE_TABLE_FORMAT)
            if _is_merge(resource.write_disposition):
                resource.apply_hints(write_disposition=LAKE_MERGE)
            resource.add_map(_as_lake_hints)
    return source


def _as_lake_hints(item: Any, meta: Any = None) -> Any:
    """Rewrite the hints a batch carries (`dlt.mark.with_hints`) for a Delta table."""
    hints = getattr(meta, "hints", None)
    if isinstance(hints, dict):
        hints["table_format"] = LAKE_TABLE_FORMAT
        if _is_merge(hints.get("write_disposition")):
            hints["write_disposition"] = dict(LAKE_MERGE)
    return item


def _is_merge(write_disposition: Any) -> bool:
    if isinstance(write_disposition, dict):
        return write_disposition.get("disposition") == "merge"
    return write_disposition == "merge"


def missing_dependency_error(
    exc: MissingDependencyException, destination: Any
) -> ConfigurationError:
    """dlt's missing-package message, said as the extra of this project to install."""
    kind = str(getattr(destination, "destination_type", "") or "").rsplit(".", 1)[-1]
    extra = EXTRAS.get(kind)
    install = (
        f"install its extra: `uv sync --extra {extra}` (or `pip install 'braze-sends[{extra}]'`)"
        if extra
        else f"install what it needs: {', '.join(exc.dependencies)}"
    )
    return ConfigurationError(
        f"the {kind or 'chosen'} destination needs packages that are not installed; {install}"
    )

"""Runs the pipeline safely from cron: the dlt pipeline, a run lock, pending packages, outcomes.

- One run at a time per pipeline: a second one fails at once with `RunLockedError` (an OS file
  lock, released even when the process is killed).
- A previous run killed during normalize or load left load packages behind: they are loaded
  first (dlt's own `run` would load them and stop without extracting). A load job it left
  committed but unrecorded is redone from a clean slate (`redo_interrupted_jobs`); what a run
  killed during extract had written is dropped (`drop_abandoned_extracts`).
- Errors are mapped to what the user must do: `run_pipeline` raises `BrazeSendsError`
  subclasses, found anywhere in dlt's exception chain.
- The destination and dataset come from `destinations.resolve_target`; every run's source gets
  what its destination needs (`destinations.prepare_source`: Delta tables on a lake) and the
  pinned types and schema contract (`schema.pin`).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.client import WithStagingDataset
from dlt.common.exceptions import MissingDependencyException
from dlt.common.pipeline import LoadInfo
from dlt.common.schema.exceptions import DataValidationError
from dlt.common.schema.typing import C_DLT_LOAD_ID
from dlt.common.storages import NormalizeStorage
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.pipeline.exceptions import PipelineStepFailed

from braze_sends import braze_sends, memory, schema
from braze_sends.capture import RunSession
from braze_sends.destinations import missing_dependency_error, prepare_source, resolve_target
from braze_sends.errors import BrazeSendsError, ConfigurationError, RunLockedError
from braze_sends.settings import (
    DEFAULT_CHUNK_PAIRS,
    DUCKDB_DEFAULTS,
    DUCKDB_MB_PER_COLUMN,
    DUCKDB_MIN_MB,
    PIPELINE_NAME,
)
from braze_sends.views import refresh_views

logger = logging.getLogger(__name__)

LOAD_ID_SETTING = "normalize.parquet_normalizer.add_dlt_load_id"
DUCKDB_SETTING = "destination.duckdb.credentials.global_config"
GIVEN_PAIRS = ("pairs", "sends_file")  # the source arguments that register pairs


@dataclass
class RunResult:
    """What a run did, for the CLI's summary and exit code."""

    summary: dict[str, Any]
    load_info: LoadInfo | None
    pending_loaded: bool = False

    @property
    def failed(self) -> int:
        return int(self.summary.get("failed", 0))


def make_pipeline(
    *,
    pipeline_name: str = PIPELINE_NAME,
    destination: Any = None,
    dataset_name: str | None = None,
    pipelines_dir: str | None = None,
    export_schema_path: str | None = None,
) -> dlt.Pipeline:
    """The dlt pipeline. Destination and dataset: as given, else dlt's config, else DuckDB/`braze`.

    See `destinations.resolve_target` for where the configuration is looked up.

    Raises:
        ConfigurationError: the destination is unknown.
    """
    # Arrow tables skip dlt's row normalizer; ask it to stamp `_dlt_load_id` on them anyway, so
    # every row can be traced to its load (`_dlt_loads`), as on the dict-row path.
    if dlt.config.get(LOAD_ID_SETTING, bool) is None:
        dlt.config[LOAD_ID_SETTING] = True
    # DuckDB would take 80% of RAM and every core for a merge; a bounded buffer pool (it spills
    # to disk beyond it) and one thread were both leaner and faster here. Config overrides it.
    # (dlt keeps anything under `credentials` with its secrets, so the default goes there.)
    if not _duckdb_configured_by_user():
        _set_duckdb(dict(DUCKDB_DEFAULTS))
    target = resolve_target(pipeline_name, destination, dataset_name)
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target.destination,
        dataset_name=target.dataset_name,
        pipelines_dir=pipelines_dir,
        export_schema_path=export_schema_path,
        progress="log" if os.environ.get("BRAZE_SENDS_DLT_PROGRESS") else None,
    )


_OURS: dict[str, Any] = {}  # the DuckDB settings this process chose (not the user's)


def _duckdb_configured_by_user() -> bool:
    current = dlt.secrets.get(DUCKDB_SETTING) or dlt.config.get(DUCKDB_SETTING)
    if current is None:
        return False
    try:
        return dict(current) != _OURS
    except (TypeError, ValueError):  # e.g. a JSON string from the environment: the user's
        return True


def _set_duckdb(settings: dict[str, Any]) -> None:
    _OURS.clear()
    _OURS.update(settings)
    dlt.secrets[DUCKDB_SETTING] = dict(settings)


def size_duckdb(pipeline: dlt.Pipeline) -> None:
    """Give DuckDB's buffer pool room to commit a merge into the widest table, before a load.

    The default cap keeps a run small, but committing a merge pins buffers per column, and Braze
    adds metric columns (one per carousel slide or button name): a fixed cap would fail every
    load of a wide workspace. Settings from the user's config are left as they are.
    """
    destination = pipeline.destination
    if destination is None or not destination.destination_type.endswith(".duckdb"):
        return
    if _duckdb_configured_by_user():
        return
    if pipeline.default_schema_name is None:
        return
    tables = pipeline.default_schema.data_tables()
    widest = max((len(table.get("columns", {})) for table in tables), default=0)
    megabytes = max(DUCKDB_MIN_MB, math.ceil(DUCKDB_MB_PER_COLUMN * widest))
    settings = {**DUCKDB_DEFAULTS, "memory_limit": f"{megabytes}MB"}
    if settings != _OURS:
        logger.debug("DuckDB memory_limit %s MB for a %d-column table", megabytes, widest)
        _set_duckdb(settings)


def run_once(pipeline: dlt.Pipeline, data: Any) -> LoadInfo:
    """`pipeline.run(data)`, with DuckDB sized for the tables between normalize and load."""
    pipeline.run()  # what `run` does first: restore state from the destination (once), pending
    pipeline.extract(data)
    pipeline.normalize()
    size_duckdb(pipeline)
    return pipeline.load()


@contextmanager
def run_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Hold an exclusive lock for `pipeline`, or raise `RunLockedError` at once."""
    lock_dir = Path(pipeline.pipelines_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f".{pipeline.pipeline_name}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(
                f"another run of pipeline {pipeline.pipeline_name!r} is in progress ({holder}); "
                "this run did nothing. Runs of one pipeline must not overlap: space the schedule "
                "further apart or give each job its own pipeline name."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pipeline(
    pipeline: dlt.Pipeline, *, chunk_pairs: int | None = DEFAULT_CHUNK_PAIRS, **source_args: Any
) -> RunResult:
    """Finish what a killed run left, then capture and load every due pair, chunk by chunk.

    Each chunk of at most `chunk_pairs` pairs is loaded as its own dlt load (with its state), so
    memory stays bounded however many pairs are due, and a run killed halfway keeps the chunks
    it completed. One `RunSession` pulls for the whole run and keeps fetching ahead while a chunk
    loads, so the request budget never idles. `max_requests` and `time_budget` hold for the run.

    Args:
        chunk_pairs: pairs per load; None loads everything at once.
        source_args: arguments of the `braze_sends` source; those not given come from config.

    Raises:
        BrazeSendsError: configuration, key, lock or API problems that stop the run.
        PipelineStepFailed: the destination failed (the data stays in a pending package and is
            loaded by the next run).
    """
    session = RunSession()
    info = None
    with run_lock(pipeline):
        try:
            pending = finish_pending(pipeline)
            registered = 0
            if (source_args.get("pairs") or source_args.get("sends_file")) and source_args.get(
                "max_requests"
            ) != 0:
                # Remember the given pairs before the first pull: a run killed during its first
                # chunk would otherwise forget them (scheduled runs often pass no sends file).
                source = braze_sends(**{**source_args, "max_requests": 0})
                info = run_once(pipeline, schema.pin(prepare_source(source, pipeline.destination)))
                registered = last_run(pipeline).get("registered", 0)
                source_args = {k: v for k, v in source_args.items() if k not in GIVEN_PAIRS}
            while not session.finished:
                source = braze_sends(**source_args, session=session, chunk_pairs=chunk_pairs)
                info = run_once(pipeline, schema.pin(prepare_source(source, pipeline.destination)))
                memory.release()
        except Exception as exc:
            drop_abandoned_extracts(pipeline)  # what a failed extract wrote: nothing to load
            known = known_error(exc, pipeline)
            if known is None:
                raise
            raise known from None
        finally:
            session.close()
        # After the load, never instead of it: a failure here is a warning, the data stays.
        refresh_views(pipeline)
    summary = last_run(pipeline)
    summary["registered"] = summary.get("registered", 0) + registered
    return RunResult(summary=summary, load_info=info, pending_loaded=pending)


def last_run(pipeline: dlt.Pipeline) -> dict[str, Any]:
    return dict(pipeline.state.get("sources", {}).get(PIPELINE_NAME, {}).get("last_run", {}))


def source_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The source's state, from local state, else restored from the destination.

    Reading local state needs no database connection, so `status` works while a run holds the
    destination (DuckDB allows one writer).
    """
    if not pipeline.first_run:
        state = pipeline.state
    else:
        try:
            pipeline.sync_destination()
        except Exception as exc:  # noqa: BLE001 - nothing to restore is a valid answer
            logger.info("no pipeline state to restore from the destination: %s", exc)
        state = pipeline.state
    return state.get("sources", {}).get(PIPELINE_NAME, {})


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Normalize and load packages a previous run left behind. Returns whether there were any."""
    drop_abandoned_extracts(pipeline)
    if not pipeline.has_pending_data:
        return False
    logger.warning("a previous run did not finish: loading its pending load packages first")
    drop_stale_extracted_copies(pipeline)
    redo_interrupted_jobs(pipeline)
    pipeline.normalize()
    size_duckdb(pipeline)
    pipeline.load()
    return True


def drop_stale_extracted_copies(pipeline: dlt.Pipeline) -> list[str]:
    """Remove extracted packages that normalize already committed.

    dlt 1.31 commits a normalized package (an atomic rename) and only then deletes its extracted
    copy; a run killed between the two leaves both, and normalizing the copy again fails with
    "Directory not empty". The committed package is complete, so the copy is dropped.
    """
    load_storage = pipeline._get_load_storage()
    committed = {*load_storage.list_normalized_packages(), *load_storage.list_loaded_packages()}
    extracted = pipeline._get_normalize_storage().extracted_packages
    stale = [load_id for load_id in extracted.list_packages() if load_id in committed]
    for load_id in stale:
        logger.warning(
            "dropping the extracted copy of package %s: it was already normalized", load_id
        )
        extracted.delete_package(load_id)
    return stale


def drop_abandoned_extracts(pipeline: dlt.Pipeline) -> list[str]:
    """Remove the half-written packages of runs killed during extract.

    dlt extracts into a folder of its own under `normalize/` and moves the package to
    `normalize/extracted` only once the extract is complete; a run killed before that leaves the
    folder (and the data files it had written) behind for good, as the next run extracts into a
    new one. Under the run lock no other extract of this pipeline is running, so every such
    folder is abandoned: its pull is redone by the run that finds it.
    """
    storage = pipeline._get_normalize_storage().storage
    if not os.path.isdir(storage.storage_path):
        return []  # the pipeline never ran
    abandoned = [
        name
        for name in storage.list_folder_dirs(".", to_root=False)
        if name != NormalizeStorage.EXTRACTED_FOLDER
    ]
    for name in abandoned:
        logger.info("removing the partial extract of a run killed during extract (%s)", name)
        storage.delete_folder(name, recursively=True)
    return abandoned


def redo_interrupted_jobs(pipeline: dlt.Pipeline) -> dict[str, list[str]]:
    """Make a load a killed run left midway safe to resume: no file is copied twice.

    A load job copies one file into a table (the staging table, for a merge) in one transaction,
    and dlt then records that it did. A run killed between the two leaves the job "started"
    without that record, and dlt runs it again: its rows land twice (the merge inserts both
    copies, as the batches skip dlt's dedup pass, see `tables.py`), or, on PostgreSQL, the copy
    breaks the unique constraint on `_dlt_id` (`campaigns`, `_dlt_pipeline_state`) and every
    later run fails on it. So, for each table with such a job, the package's rows
    (`_dlt_load_id`) are deleted from where its jobs load, and all its jobs of the package run
    again. A lake needs none of this: it upserts.

    Returns:
        The tables whose jobs are redone, per package.
    """
    packages = pipeline._get_load_storage().normalized_packages
    redone: dict[str, list[str]] = {}
    for load_id in packages.list_packages():
        recorded = set(packages.list_pending_transitions(load_id))
        started = [
            ParsedLoadJobFileName.parse(os.path.basename(path))
            for path in packages.list_started_jobs(load_id)
        ]
        # Jobs dlt recorded as done are not run again; merges (`sql`) are safe to run again.
        tables = sorted(
            {
                j.table_name
                for j in started
                if j.file_format != "sql" and j.file_name() not in recorded
            }
        )
        if not tables:
            continue
        client = pipeline._get_destination_clients(packages.load_schema(load_id))[0]
        if not isinstance(client, SqlJobClientBase):
            continue
        try:
            with client:
                for table in tables:
                    _delete_rows_of_load(client, table, load_id)
        except Exception as exc:  # the destination is down: the package waits for the next run
            raise PipelineStepFailed(pipeline, "load", load_id, exc) from exc
        for state, job in packages.list_all_jobs_with_states(load_id):
            if job.table_name not in tables or job.file_format == "sql":
                continue
            packages.clear_pending_transition(load_id, job.file_name())
            if state == "completed_jobs":
                packages.storage.atomic_rename(
                    packages.get_job_file_path(load_id, state, job.file_name()),
                    packages.get_job_file_path(load_id, "new_jobs", job.file_name()),
                )
        redone[load_id] = tables
        logger.warning(
            "a run was killed while loading package %s: loading %s again from its start",
            load_id,
            ", ".join(tables),
        )
    return redone


def _delete_rows_of_load(client: SqlJobClientBase, table: str, load_id: str) -> None:
    """Delete what package `load_id` loaded into `table` (its staging table, for a merge)."""
    sql_client = client.sql_client
    staging = isinstance(client, WithStagingDataset) and client.should_load_data_to_staging_dataset(
        table
    )
    with sql_client.with_staging_dataset() if staging else nullcontext():
        name = sql_client.make_qualified_table_name(table)
        column = sql_client.escape_column_name(C_DLT_LOAD_ID)
        try:
            sql_client.execute_sql(f"DELETE FROM {name} WHERE {column} = %s", load_id)
        except DatabaseUndefinedRelation:
            pass  # never created: nothing of this load is in it


def known_error(exc: BaseException, pipeline: dlt.Pipeline) -> BrazeSendsError | None:
    """What `exc` means for the user, as one of this project's errors; None when it is unforeseen.

    Found anywhere in dlt's exception chain: this project's own errors, a missing setting of the
    source or the destination, a destination's missing packages, a schema contract violation.
    """
    cause = find_cause(exc, BrazeSendsError)
    if cause is not None:
        return cause  # type: ignore[return-value]
    missing = find_cause(exc, ConfigFieldMissingException)
    if missing is not None:
        return missing_config_error(missing, pipeline)  # type: ignore[arg-type]
    dependency = find_cause(exc, MissingDependencyException)
    if dependency is not None:
        return missing_dependency_error(dependency, pipeline.destination)  # type: ignore[arg-type]
    violation = find_cause(exc, DataValidationError)
    if violation is not None:
        return schema.contract_error(violation)  # type: ignore[arg-type]
    return None


def missing_config_error(
    exc: ConfigFieldMissingException, pipeline: dlt.Pipeline | None = None
) -> ConfigurationError:
    """dlt's long lookup report, said in one line with where to put each value."""
    fields = sorted(getattr(exc, "traces", {}) or {}) or ["a required value"]
    if pipeline is not None and pipeline.destination is not None and _is_destination(exc):
        name = pipeline.destination.destination_name
        hints = [
            f"{field} (set DESTINATION__{name.upper()}__{field.upper()}, or {field} under "
            f"[destination.{name}] in .dlt/secrets.toml)"
            for field in fields
        ]
        return ConfigurationError(
            f"the {name} destination is missing configuration: " + "; ".join(hints)
        )
    hints = []
    for field in fields:
        env = f"SOURCES__BRAZE__{field.upper()}"
        place = ".dlt/secrets.toml" if field == "api_key" else ".dlt/config.toml"
        hints.append(f"{field} (set {env}, or {field} under [sources.braze] in {place})")
    return ConfigurationError("missing configuration: " + "; ".join(hints))


def _is_destination(exc: ConfigFieldMissingException) -> bool:
    """Whether the missing fields were looked up under `[destination...]` (not the source)."""
    pending = list((getattr(exc, "traces", {}) or {}).values())
    while pending:
        trace = pending.pop()
        if isinstance(trace, list):
            pending.extend(trace)
        elif hasattr(trace, "traces"):  # nested lookups, e.g. the fields of `credentials`
            pending.extend(trace.traces.values())
        elif getattr(trace, "sections", None) and trace.sections[0] == "destination":
            return True
    return False


def find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in `exc`'s chain (dlt wraps what a resource raises)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        if isinstance(current, PipelineStepFailed) and getattr(current, "exception", None):
            current = current.exception
        else:
            current = current.__cause__ or current.__context__
    return None

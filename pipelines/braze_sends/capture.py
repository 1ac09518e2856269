"""One capture run: register pairs, choose the due ones, pull them, apply the lifecycle, batch rows.

This is the body of the dlt resource, kept apart from the dlt wiring so it reads top to bottom:

1. load every record from state and register the pairs given this time (`plan`);
2. sort the due sends by urgency and cut to the request budget (`max_requests`, `time_budget`);
3. pull them concurrently, fetching ahead across chunks (`fetch.Puller`); record each failure
   (`failed`);
4. flatten the responses in batches (`settle`: the vectorised `columnar` path, or the reference
   `flatten` pair by pair when a batch holds something the fast path does not take), apply the
   `lifecycle` to each pair, withholding days a retention signal would erase, buffer the rows;
5. yield Arrow batches as buffers fill, then the changed `sends` rows; save the records
   (`finish`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from braze_sends import lifecycle, registry
from braze_sends.client import BrazeClient
from braze_sends.columnar import PAIR, BatchTables, Response, flatten_batch, from_flat
from braze_sends.columns import DAILY_KEY, DLT_TYPES, VARIATION_KEY, fits
from braze_sends.errors import (
    ConfigurationError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from braze_sends.fetch import Puller, PullResult
from braze_sends.flatten import FlatSeries, day_activity, flatten_series
from braze_sends.sends_file import SendPair
from braze_sends.settings import DAILY_TABLE, VARIATION_TABLE
from braze_sends.tables import DEFAULT_BATCH_ROWS, ItemFormat, TableBuffer, sends_rows

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5.0  # seconds between progress lines


# Which of some (campaign_id, send_id) pairs are finished in the `sends` table.
PairsLookup = Callable[[set[tuple[str, str]]], set[tuple[str, str]]]


@dataclass(frozen=True)
class CaptureOptions:
    """How one run behaves. Validated on creation: a bad value is a `ConfigurationError`."""

    timezone: str = "UTC"
    workers: int = 8
    max_requests: int | None = None
    time_budget: float | None = None  # seconds
    final_margin_hours: float = 6.0
    at_risk_hours: float = 48.0
    item_format: ItemFormat = "arrow"
    batch_rows: int = DEFAULT_BATCH_ROWS
    batch_pairs: int = 250  # responses flattened together on the fast path

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"timezone {self.timezone!r} is not an IANA time zone name (e.g. UTC, "
                "America/New_York); use the time zone of the Braze workspace"
            ) from None
        check_range("workers", self.workers, 1, 256)
        if self.max_requests is not None:
            check_range("max_requests", self.max_requests, 0, 10**9)
        if self.time_budget is not None:
            check_range("time_budget", self.time_budget, 1, 7 * 24 * 3600)
        check_range("final_margin_hours", self.final_margin_hours, 0, 13 * 24)
        check_range("at_risk_hours", self.at_risk_hours, 1, 14 * 24)
        check_range("batch_rows", self.batch_rows, 1, 10**7)
        check_range("batch_pairs", self.batch_pairs, 1, 10**5)
        if self.item_format not in ("arrow", "rows"):
            raise ConfigurationError(
                f"item_format must be 'arrow' or 'rows', not {self.item_format!r}"
            )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def check_range(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be a number from {low} to {high}, got {value!r}")


@dataclass
class RunSummary:
    """What one run did; saved in state as `last_run` and printed by the CLI."""

    started_at: str
    registered: int = 0
    known: int = 0
    due: int = 0
    deferred: int = 0  # due but left for a later run by the request/time budget
    pulled: int = 0
    failed: int = 0
    retention_signals: int = 0
    withheld_days: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    finished_at: str | None = None
    seconds: float = 0.0
    chunks: int = 0

    MAX_LISTED_FAILURES = 50

    def as_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class RunSession:
    """What one run keeps across its chunks: the client, the puller fetching ahead, the summary.

    The runner makes one per run and passes it to the source of each chunk; without one, a
    source pulls everything in a single load.
    """

    def __init__(self) -> None:
        self.client: BrazeClient | None = None
        self.puller: Puller | None = None
        self.summary: RunSummary | None = None
        self.planned = False
        self.chunks = 0
        self.started = time.monotonic()
        self.progress: _Progress | None = None

    @property
    def finished(self) -> bool:
        """Every due pair's result has been consumed (or the run had nothing to pull)."""
        return self.planned and (self.puller is None or self.puller.exhausted)

    def close(self) -> None:
        if self.puller is not None:
            self.puller.close()


def run_capture(
    connect: Callable[[], BrazeClient],
    state: dict[str, Any],
    pairs: list[SendPair],
    options: CaptureOptions,
    *,
    clock: Callable[[], datetime],
    finished_in_warehouse: PairsLookup,
    stored_types: dict[str, dict[str, str]] | None = None,
    session: RunSession | None = None,
    chunk_pairs: int | None = None,
) -> Iterator[Any]:
    """The resource body: yields hinted Arrow tables (or rows) for the three tables.

    Args:
        connect: builds the client; called only when some pair is due (registering pairs, or a
            run with nothing due, needs no key and makes no request).
        stored_types: the warehouse's column types per table (from the dlt schema), so a
            metric whose type changed fails its pair alone.
        session: the run this load is a chunk of; its first chunk plans the run.
        chunk_pairs: with a session, the pairs this load takes (the rest: later chunks).
        finished_in_warehouse: which of some pairs are finished in the `sends` table
            (`warehouse.finished_pairs`): given pairs that may be archived are asked about.

    Raises:
        BrazeAPIError: one that concerns every pair (bad key, missing permission, wrong URL).
        ConfigurationError: base_url cannot be reached at all.
    """
    own = session is None
    session = session or RunSession()
    try:
        run = CaptureRun(state, pairs, options, clock, finished_in_warehouse, stored_types, session)
        if not session.planned:
            due = run.plan()
            session.planned = True
            if due:
                session.client = connect()
                deadline = session.started + options.time_budget if options.time_budget else None
                jobs = [(r, lifecycle.window(r, now=run.now, tz=run.tz)) for r in due]
                session.puller = Puller(session.client, jobs, workers=options.workers,
                                        clock=clock, deadline=deadline)  # fmt: skip
                session.progress = _Progress(total=len(due))
        if session.puller is not None:
            batch: list[PullResult] = []
            for result in session.puller.results(None if own else chunk_pairs):
                if result.error is not None:
                    run.failed(result, session.client)
                else:
                    batch.append(result)
                    if len(batch) >= options.batch_pairs:
                        yield from run.settle(batch)
                        batch = []
                session.progress.tick(run.summary, session.client)
            yield from run.settle(batch)
        yield from run.finish(session.client)
    finally:
        if own:
            session.close()


class CaptureRun:
    """One load's records and buffers (a run's chunk); the steps `run_capture` drives."""

    def __init__(
        self,
        state: dict[str, Any],
        pairs: list[SendPair],
        options: CaptureOptions,
        clock: Callable[[], datetime],
        finished_in_warehouse: PairsLookup,
        stored_types: dict[str, dict[str, str]] | None = None,
        session: RunSession | None = None,
    ) -> None:
        self.state, self.pairs, self.options, self.clock = state, pairs, options, clock
        self.session = session or RunSession()
        # The warehouse's column types (dlt schema), then what this run has accepted.
        self.stored_types = {t: dict(c) for t, c in (stored_types or {}).items()}
        self.tz, self.now = options.tz, clock()
        if self.session.summary is None:
            self.session.summary = RunSummary(started_at=self.now.isoformat())
        self.summary = self.session.summary
        self.records = registry.load_records(state)
        self.before = dict(self.records)
        self._retire_legacy_archive(finished_in_warehouse)
        # A given pair the registry doesn't hold may be archived: the warehouse knows.
        candidates = registry.archive_candidates(
            state, ((p.campaign_id, p.send_id) for p in pairs), self.records
        )
        archived = finished_in_warehouse(candidates) if candidates else set()
        self.summary.registered += registry.register(
            self.records, pairs, now=self.now, tz=self.tz, archived=archived
        )
        self.summary.known = len(self.records) + registry.archived_count(state)
        self.buffers = {
            table: TableBuffer(
                table, key, item_format=options.item_format, max_rows=options.batch_rows
            )
            for table, key in ((VARIATION_TABLE, VARIATION_KEY), (DAILY_TABLE, DAILY_KEY))
        }
        self.final_margin = timedelta(hours=options.final_margin_hours)
        self._unreachable = 0

    def _retire_legacy_archive(self, finished_in_warehouse: PairsLookup) -> None:
        missing = registry.retire_legacy_archive(self.state, finished_in_warehouse)
        if missing:
            sample = ", ".join(f"{c}/{s}" for c, s in sorted(missing)[:5])
            logger.warning(
                "%d sends of the earlier archive have no final row in `sends` (e.g. %s): "
                "a sends file that lists them again registers them again",
                len(missing),
                sample,
            )

    def plan(self) -> list[lifecycle.SendRecord]:
        """The due pairs, most urgent first, cut to the request budget."""
        summary, now, tz = self.summary, self.now, self.tz
        horizon = timedelta(hours=self.options.at_risk_hours)
        due = sorted(
            (r for r in self.records.values() if lifecycle.is_due(r, now=now, tz=tz)),
            key=lambda r: lifecycle.priority(r, now=now, tz=tz, horizon=horizon),
        )
        summary.due = len(due)
        logger.info("%d pairs registered (%d new), %d due this run",
                    len(self.records), summary.registered, summary.due)  # fmt: skip
        if self.options.max_requests is not None:
            due = due[: self.options.max_requests]
        return due

    def failed(
        self, result: PullResult, client: BrazeClient | None, *, permanent: bool | None = None
    ) -> None:
        """Record a pair's failure; stop the run when the failure concerns every pair."""
        error = result.error
        if error.stops_run:
            raise error
        # Every answer so far says base_url is wrong (nothing listens, or web pages instead of
        # Braze's API): stop rather than fail every pair one by one.
        kind = _wrong_endpoint(result)
        self._unreachable = self._unreachable + 1 if kind else 0
        if client and self._unreachable >= max(self.options.workers, 3) and not self.summary.pulled:
            raise ConfigurationError(
                f"{kind} {client.base_url}: {error.detail}; check base_url (your workspace's "
                "REST endpoint, e.g. https://rest.iad-01.braze.com) and the network"
            )
        key = result.record.key
        self.summary.failed += 1
        if len(self.summary.failures) < RunSummary.MAX_LISTED_FAILURES:
            self.summary.failures.append(
                {"campaign_id": key[0], "send_id": key[1], "error": str(error)}
            )
        logger.warning("pair failed: %s", error)
        self.records[key] = lifecycle.after_failure(
            self.records[key],
            str(error),
            now=result.received_at,
            tz=self.tz,
            permanent=not error.retryable if permanent is None else permanent,
        )

    def settle(self, batch: list[PullResult]) -> Iterator[Any]:
        """Flatten a batch of responses, apply the lifecycle to each pair, buffer the rows."""
        if not batch:
            return
        if self.options.item_format == "arrow":
            self._settle_columnar(batch)
        else:
            for result in batch:
                self._settle_rows(result)
        for buffer in self.buffers.values():
            if buffer.full:
                yield from buffer.flush()

    def _settle_columnar(self, batch: list[PullResult]) -> None:
        responses = [
            Response(r.record.campaign_id, r.record.send_id, r.data, r.received_at) for r in batch
        ]
        try:
            parts = [(list(range(len(batch))), flatten_batch(responses))]
        except (ValueError, TypeError, pa.ArrowException):
            # Something the fast path can't take: the reference decides, pair by pair.
            parts = []
            for index, result in enumerate(batch):
                flat = self._reference(result)
                if flat is not None:
                    parts.append(([index], from_flat(flat, index)))
        for indices, tables in parts:
            conflicts = self._type_conflicts(tables, batch)
            tables = tables.without_pairs(set(conflicts))
            indices = [i for i in indices if i not in conflicts]
            activity = tables.activity()
            withheld = {}
            for index in indices:
                outcome = self._outcome(batch[index], activity.get(index, {}))
                if outcome.withheld_days:
                    withheld[index] = set(outcome.withheld_days)
            tables = tables.keep(withheld)
            self.buffers[VARIATION_TABLE].add_table(
                tables.variation.drop_columns([PAIR]), tables.kinds
            )
            self.buffers[DAILY_TABLE].add_table(tables.daily.drop_columns([PAIR]), tables.kinds)

    def _type_conflicts(self, tables: BatchTables, batch: list[PullResult]) -> dict[int, str]:
        """Responses with a metric whose type no longer fits its warehouse column.

        dlt's contract would refuse the whole load (and with it every other pair's data); here
        only the responses holding such a value fail, with a message naming the column.
        """
        conflicts: dict[int, str] = {}
        for table_name, table, key in (
            (VARIATION_TABLE, tables.variation, "variation"),
            (DAILY_TABLE, tables.daily, "daily"),
        ):
            stored = self.stored_types.setdefault(table_name, {})
            for column in table.column_names:
                kind = tables.kinds.get(column)
                if kind is None:
                    continue
                if fits(kind, stored.get(column)):
                    stored.setdefault(column, DLT_TYPES[kind])
                    continue
                message = (
                    f"metric {column!r} is now {kind} but {table_name}.{column} is "
                    f"{stored[column]} in the warehouse: Braze changed its type; this pair "
                    "fails (its stored rows stay) until the column is migrated"
                )
                for index in tables.pairs_with_values(key, column):
                    conflicts.setdefault(index, message)
        for index, message in conflicts.items():
            result = batch[index]
            error = UnexpectedResponseError(
                message, campaign_id=result.record.campaign_id, send_id=result.record.send_id
            )
            self.failed(
                PullResult(result.record, result.window, result.received_at, error=error),
                None,
                permanent=True,
            )
        return conflicts

    def _settle_rows(self, result: PullResult) -> None:
        flat = self._reference(result)
        if flat is None:
            return
        index = 0
        tables = from_flat(flat, index)
        if self._type_conflicts(tables, [result]):
            return
        keep = self._outcome(result, day_activity(flat)).keep_days
        self.buffers[VARIATION_TABLE].add(
            (row for row in flat.variation_rows if row["date"] in keep), flat.kinds
        )
        self.buffers[DAILY_TABLE].add(
            (row for row in flat.daily_rows if row["date"] in keep), flat.kinds
        )

    def _reference(self, result: PullResult) -> FlatSeries | None:
        """The pair's rows by the reference flattening, or None (the pair failed) when the
        response does not fit the contract."""
        record = result.record
        try:
            return flatten_series(
                record.campaign_id, record.send_id, result.data, pulled_at=result.received_at
            )
        except UnexpectedResponseError as exc:
            self.failed(PullResult(record, result.window, result.received_at, error=exc), None)
            return None

    def _outcome(self, result: PullResult, activity: dict) -> lifecycle.Outcome:
        """Apply a successful response to the pair's record."""
        key = result.record.key
        outcome = lifecycle.after_response(
            self.records[key],
            activity,
            now=result.received_at,
            tz=self.tz,
            final_margin=self.final_margin,
        )
        self.summary.pulled += 1
        if outcome.retention_signal:
            self.summary.retention_signals += 1
            self.summary.withheld_days += len(outcome.withheld_days)
            logger.info(
                "%s/%s: Braze no longer holds %d stored day(s); kept what is stored",
                *key,
                len(outcome.withheld_days),
            )
        self.records[key] = outcome.record
        return outcome

    def finish(self, client: BrazeClient | None) -> Iterator[Any]:
        """Flush the buffers, then the changed `sends` rows; save records and the run's summary
        so far (each chunk's load carries it)."""
        for buffer in self.buffers.values():
            yield from buffer.flush()
        summary = self.summary
        summary.deferred = summary.due - summary.pulled - summary.failed
        changed = registry.touched(self.before, self.records)
        moved = registry.save_records(self.state, changed, now=self.now)
        rows = [registry.sends_row(r, self.tz) for r in changed]
        yield from sends_rows(rows, self.options.item_format)
        for name, buffer in self.buffers.items():
            summary.rows[name] = summary.rows.get(name, 0) + buffer.rows_out
        if client is not None:
            summary.requests, summary.retries = client.stats.requests, client.stats.retries
            summary.statuses = {str(k): v for k, v in client.stats.statuses.items()}
        summary.status_counts = registry.status_counts(
            (r.status for k, r in self.records.items() if k not in moved),
            registry.archived_totals(self.state),
        )
        summary.finished_at = self.clock().isoformat()
        summary.seconds = round(time.monotonic() - self.session.started, 3)
        self.session.chunks += 1
        summary.chunks = self.session.chunks
        self.state["last_run"] = summary.as_state()


def _wrong_endpoint(result: PullResult) -> str | None:
    """What a failure says about base_url, if it points away from Braze's API."""
    error = result.error
    if isinstance(error, TransportError) and "timed out" not in error.detail:
        return "cannot reach"
    if isinstance(error, (ServerError, UnexpectedResponseError)) and "HTML page" in error.detail:
        return "web pages, not Braze's API, answer at"
    if isinstance(error, UnexpectedResponseError) and "not JSON" in error.detail:
        return "no JSON API answers at"
    return None


class _Progress:
    """A progress line every few seconds for long runs."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = self.last = time.monotonic()

    def tick(self, summary: RunSummary, client: BrazeClient) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        done = summary.pulled + summary.failed
        rate = client.stats.requests / max(now - self.started, 1e-9)
        logger.info(
            "progress: %d/%d pairs (%d failed), %d requests, %.1f req/s",
            done,
            self.total,
            summary.failed,
            client.stats.requests,
            rate,
        )

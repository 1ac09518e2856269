"""One capture run: register pairs, choose the due ones, pull them, apply the lifecycle, batch rows.

This is the body of the dlt resource, kept apart from the dlt wiring so it reads top to bottom:

1. load every record from state and register the pairs given this time (`plan`);
2. sort the due sends by urgency and cut to the request budget (`max_requests`, `time_budget`);
3. pull them concurrently (`fetch.pull_all`); record each failure (`failed`);
4. flatten the responses in batches (`settle`: the vectorised `columnar` path, or the reference
   `flatten` pair by pair when a batch holds something the fast path does not take), apply the
   `lifecycle` to each pair, withholding days a retention signal would erase, buffer the rows;
5. yield Arrow batches as buffers fill, then the changed `sends` rows; save the records
   (`finish`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from braze_sends import lifecycle, registry
from braze_sends.client import BrazeClient
from braze_sends.columnar import PAIR, Response, flatten_batch, from_flat
from braze_sends.columns import DAILY_KEY, VARIATION_KEY
from braze_sends.errors import ConfigurationError, TransportError, UnexpectedResponseError
from braze_sends.fetch import PullResult, pull_all
from braze_sends.flatten import FlatSeries, day_activity, flatten_series
from braze_sends.sends_file import SendPair
from braze_sends.settings import DAILY_TABLE, VARIATION_TABLE
from braze_sends.tables import DEFAULT_BATCH_ROWS, ItemFormat, TableBuffer, sends_rows

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5.0  # seconds between progress lines


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
        _check_range("workers", self.workers, 1, 256)
        if self.max_requests is not None:
            _check_range("max_requests", self.max_requests, 0, 10**9)
        if self.time_budget is not None:
            _check_range("time_budget", self.time_budget, 1, 7 * 24 * 3600)
        _check_range("final_margin_hours", self.final_margin_hours, 0, 13 * 24)
        _check_range("at_risk_hours", self.at_risk_hours, 1, 14 * 24)
        _check_range("batch_rows", self.batch_rows, 1, 10**7)
        _check_range("batch_pairs", self.batch_pairs, 1, 10**5)
        if self.item_format not in ("arrow", "rows"):
            raise ConfigurationError(
                f"item_format must be 'arrow' or 'rows', not {self.item_format!r}"
            )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _check_range(name: str, value: Any, low: float, high: float) -> None:
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

    MAX_LISTED_FAILURES = 50

    def as_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def run_capture(
    connect: Callable[[], BrazeClient],
    state: dict[str, Any],
    pairs: list[SendPair],
    options: CaptureOptions,
    *,
    clock: Callable[[], datetime],
) -> Iterator[Any]:
    """The resource body: yields hinted Arrow tables (or rows) for the three tables.

    Args:
        connect: builds the client; called only when some pair is due (registering pairs, or a
            run with nothing due, needs no key and makes no request).

    Raises:
        BrazeAPIError: one that concerns every pair (bad key, missing permission, wrong URL).
        ConfigurationError: base_url cannot be reached at all.
    """
    run = CaptureRun(state, pairs, options, clock)
    due = run.plan()
    client = connect() if due else None
    if client is not None:
        jobs = ((r, lifecycle.window(r, now=run.now, tz=run.tz)) for r in due)
        deadline = run.started + options.time_budget if options.time_budget else None
        progress = _Progress(total=len(due))
        batch: list[PullResult] = []
        for result in pull_all(client, jobs, workers=options.workers, clock=clock,
                               deadline=deadline):  # fmt: skip
            if result.error is not None:
                run.failed(result, client)
            else:
                batch.append(result)
                if len(batch) >= options.batch_pairs:
                    yield from run.settle(batch)
                    batch = []
            progress.tick(run.summary, client)
        yield from run.settle(batch)
    yield from run.finish(client)


class CaptureRun:
    """One run's records, summary and buffers; the steps `run_capture` drives."""

    def __init__(
        self,
        state: dict[str, Any],
        pairs: list[SendPair],
        options: CaptureOptions,
        clock: Callable[[], datetime],
    ) -> None:
        self.state, self.pairs, self.options, self.clock = state, pairs, options, clock
        self.tz, self.now = options.tz, clock()
        self.started = time.monotonic()
        self.summary = RunSummary(started_at=self.now.isoformat())
        self.records = registry.load_records(state)
        self.before = dict(self.records)
        self.buffers = {
            table: TableBuffer(table, key, item_format=options.item_format,
                               max_rows=options.batch_rows)
            for table, key in ((VARIATION_TABLE, VARIATION_KEY), (DAILY_TABLE, DAILY_KEY))
        }  # fmt: skip
        self.final_margin = timedelta(hours=options.final_margin_hours)
        self._unreachable = 0

    def plan(self) -> list[lifecycle.SendRecord]:
        """Register the given pairs; the due ones, most urgent first, cut to the budget."""
        summary, now, tz = self.summary, self.now, self.tz
        summary.registered = registry.register(self.records, self.pairs, now=now, tz=tz)
        summary.known = len(self.records)
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

    def failed(self, result: PullResult, client: BrazeClient | None) -> None:
        """Record a pair's failure; stop the run when the failure concerns every pair."""
        error = result.error
        if error.stops_run:
            raise error
        self._unreachable = self._unreachable + 1 if _is_unreachable(result) else 0
        if client and self._unreachable >= max(self.options.workers, 3) and not self.summary.pulled:
            raise ConfigurationError(
                f"cannot reach {client.base_url}: {error.detail}; check base_url "
                "(your workspace's REST endpoint) and the network"
            )
        key = result.record.key
        self.summary.failed += 1
        if len(self.summary.failures) < RunSummary.MAX_LISTED_FAILURES:
            self.summary.failures.append(
                {"campaign_id": key[0], "send_id": key[1], "error": str(error)}
            )
        logger.warning("pair failed: %s", error)
        self.records[key] = lifecycle.after_failure(
            self.records[key], str(error), now=result.received_at, tz=self.tz,
            permanent=not error.retryable,
        )  # fmt: skip

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
        responses = [Response(r.record.campaign_id, r.record.send_id, r.data, r.received_at)
                     for r in batch]  # fmt: skip
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
            activity = tables.activity()
            withheld = {}
            for index in indices:
                outcome = self._outcome(batch[index], activity.get(index, {}))
                if outcome.withheld_days:
                    withheld[index] = set(outcome.withheld_days)
            tables = tables.keep(withheld)
            self.buffers[VARIATION_TABLE].add_table(tables.variation.drop_columns([PAIR]),
                                                    tables.kinds)  # fmt: skip
            self.buffers[DAILY_TABLE].add_table(tables.daily.drop_columns([PAIR]), tables.kinds)

    def _settle_rows(self, result: PullResult) -> None:
        flat = self._reference(result)
        if flat is None:
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
            return flatten_series(record.campaign_id, record.send_id, result.data,
                                  pulled_at=result.received_at)  # fmt: skip
        except UnexpectedResponseError as exc:
            self.failed(PullResult(record, result.window, result.received_at, error=exc), None)
            return None

    def _outcome(self, result: PullResult, activity: dict) -> lifecycle.Outcome:
        """Apply a successful response to the pair's record."""
        key = result.record.key
        outcome = lifecycle.after_response(
            self.records[key], activity, now=result.received_at, tz=self.tz,
            final_margin=self.final_margin,
        )  # fmt: skip
        self.summary.pulled += 1
        if outcome.retention_signal:
            self.summary.retention_signals += 1
            self.summary.withheld_days += len(outcome.withheld_days)
            logger.info("%s/%s: Braze no longer holds %d stored day(s); kept what is stored",
                        *key, len(outcome.withheld_days))  # fmt: skip
        self.records[key] = outcome.record
        return outcome

    def finish(self, client: BrazeClient | None) -> Iterator[Any]:
        """Flush the buffers, then the changed `sends` rows; save records and the summary."""
        for buffer in self.buffers.values():
            yield from buffer.flush()
        summary = self.summary
        summary.deferred = summary.due - summary.pulled - summary.failed
        changed = registry.touched(self.before, self.records)
        registry.save_records(self.state, changed)
        rows = [registry.sends_row(r, self.tz) for r in changed]
        yield from sends_rows(rows, self.options.item_format)
        summary.rows = {name: buffer.rows_out for name, buffer in self.buffers.items()}
        if client is not None:
            summary.requests, summary.retries = client.stats.requests, client.stats.retries
            summary.statuses = {str(k): v for k, v in client.stats.statuses.items()}
        summary.status_counts = dict(Counter(r.status for r in self.records.values()))
        summary.finished_at = self.clock().isoformat()
        summary.seconds = round(time.monotonic() - self.started, 3)
        self.state["last_run"] = summary.as_state()


def _is_unreachable(result: PullResult) -> bool:
    return isinstance(result.error, TransportError) and "timed out" not in result.error.detail


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

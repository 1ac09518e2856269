"""One capture run: register pairs, choose the due ones, pull them, apply the lifecycle, batch rows.

This is the body of the dlt resource, kept apart from the dlt wiring so it reads top to bottom:

1. load every record from state and register the pairs given this time;
2. sort the due sends by urgency and cut to the request budget (`max_requests`, `time_budget`);
3. pull them concurrently (`fetch.pull_all`), and for each result apply `lifecycle`, withholding
   days a retention signal would erase, and buffer its rows;
4. yield Arrow batches as buffers fill, then the changed `sends` rows; save the records.
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

from braze_sends import lifecycle, registry
from braze_sends.client import BrazeClient
from braze_sends.columns import DAILY_KEY, VARIATION_KEY
from braze_sends.errors import ConfigurationError, TransportError
from braze_sends.fetch import PullResult, pull_all
from braze_sends.flatten import day_activity
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
    tz, now = options.tz, clock()
    started = time.monotonic()
    summary = RunSummary(started_at=now.isoformat())
    records = registry.load_records(state)
    before = dict(records)
    summary.registered = registry.register(records, pairs, now=now, tz=tz)
    summary.known = len(records)

    horizon = timedelta(hours=options.at_risk_hours)
    due = sorted(
        (r for r in records.values() if lifecycle.is_due(r, now=now, tz=tz)),
        key=lambda r: lifecycle.priority(r, now=now, tz=tz, horizon=horizon),
    )
    summary.due = len(due)
    if options.max_requests is not None:
        due = due[: options.max_requests]
    jobs = ((r, lifecycle.window(r, now=now, tz=tz)) for r in due)
    client = connect() if due else None
    deadline = started + options.time_budget if options.time_budget else None
    logger.info(
        "%d pairs registered (%d new), %d due this run",
        len(records),
        summary.registered,
        summary.due,
    )

    buffers = {
        VARIATION_TABLE: TableBuffer(
            VARIATION_TABLE,
            VARIATION_KEY,
            item_format=options.item_format,
            max_rows=options.batch_rows,
        ),
        DAILY_TABLE: TableBuffer(
            DAILY_TABLE, DAILY_KEY, item_format=options.item_format, max_rows=options.batch_rows
        ),
    }
    progress = _Progress(total=len(due))
    unreachable = 0
    results = (
        pull_all(client, jobs, workers=options.workers, clock=clock, deadline=deadline)
        if client
        else ()
    )
    for result in results:
        key = result.record.key
        if result.error is not None:
            if result.error.stops_run:
                raise result.error
            unreachable = unreachable + 1 if _is_unreachable(result) else 0
            if unreachable >= max(options.workers, 3) and summary.pulled == 0:
                raise ConfigurationError(
                    f"cannot reach {client.base_url}: {result.error.detail}; check base_url "
                    "(your workspace's REST endpoint) and the network"
                )
            summary.failed += 1
            if len(summary.failures) < RunSummary.MAX_LISTED_FAILURES:
                summary.failures.append(
                    {"campaign_id": key[0], "send_id": key[1], "error": str(result.error)}
                )
            logger.warning("pair failed: %s", result.error)
            records[key] = lifecycle.after_failure(
                records[key],
                str(result.error),
                now=result.received_at,
                tz=tz,
                permanent=not result.error.retryable,
            )
        else:
            summary.pulled += 1
            flat = result.flat
            outcome = lifecycle.after_response(
                records[key],
                day_activity(flat),
                now=result.received_at,
                tz=tz,
                final_margin=timedelta(hours=options.final_margin_hours),
            )
            if outcome.retention_signal:
                summary.retention_signals += 1
                summary.withheld_days += len(outcome.withheld_days)
                logger.info(
                    "%s/%s: Braze no longer holds %d stored day(s); kept what is stored",
                    *key,
                    len(outcome.withheld_days),
                )
            keep = outcome.keep_days
            buffers[VARIATION_TABLE].add(
                (row for row in flat.variation_rows if row["date"] in keep), flat.kinds
            )
            buffers[DAILY_TABLE].add(
                (row for row in flat.daily_rows if row["date"] in keep), flat.kinds
            )
            records[key] = outcome.record
            for buffer in buffers.values():
                if buffer.full:
                    yield from buffer.flush()
        progress.tick(summary, client)
    for buffer in buffers.values():
        yield from buffer.flush()

    summary.deferred = summary.due - summary.pulled - summary.failed
    changed = registry.touched(before, records)
    registry.save_records(state, changed)
    yield from sends_rows([registry.sends_row(r, tz) for r in changed], options.item_format)

    summary.rows = {name: buffer.rows_out for name, buffer in buffers.items()}
    if client is not None:
        summary.requests, summary.retries = client.stats.requests, client.stats.retries
        summary.statuses = {str(k): v for k, v in client.stats.statuses.items()}
    summary.status_counts = dict(Counter(r.status for r in records.values()))
    summary.finished_at = clock().isoformat()
    summary.seconds = round(time.monotonic() - started, 3)
    state["last_run"] = summary.as_state()


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

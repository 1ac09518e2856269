"""Concurrent pulls: many pairs in flight over a thread pool, results in completion order.

Each pair is its own unit of work: its request, its retries (in the client), its failure. Every exception is caught per pair and returned as the pair's error, because an
exception escaping a dlt resource discards the whole run's data and state. The number of pairs in
flight is bounded, so memory does not grow with the number of pairs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from braze_sends.client import BrazeClient
from braze_sends.errors import BrazeAPIError, UnexpectedResponseError
from braze_sends.lifecycle import SendRecord, Window

logger = logging.getLogger(__name__)


class Cancelled(BrazeAPIError):
    """Not requested: the run stopped before this pair's turn."""

    retryable = True


@dataclass
class PullResult:
    """One pair's outcome: the response's `data` days, or the error that stopped it."""

    record: SendRecord
    window: Window
    received_at: datetime
    data: list[Any] | None = None
    error: BrazeAPIError | None = None


def pull_all(
    client: BrazeClient,
    jobs: Iterable[tuple[SendRecord, Window]],
    *,
    workers: int,
    clock: Callable[[], datetime],
    deadline: float | None = None,
) -> Iterator[PullResult]:
    """Pull every job's window, `workers` at a time.

    Args:
        jobs: (record, window) per pair, most urgent first.
        clock: the current time (stored as `pulled_at`).
        deadline: `time.monotonic()` after which no new pair is started (time budget).

    Yields:
        One `PullResult` per started job. Closing the iterator cancels the jobs not started.
    """
    jobs = iter(jobs)
    in_flight: set[Future[PullResult]] = set()
    stop = threading.Event()  # set by an error that concerns every pair (bad key, wrong URL)

    def may_start() -> bool:
        return not stop.is_set() and (deadline is None or time.monotonic() < deadline)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="braze-pull") as pool:
        try:
            while True:
                while len(in_flight) < 2 * workers and may_start():
                    job = next(jobs, None)
                    if job is None:
                        break
                    in_flight.add(pool.submit(_pull_one, client, *job, clock, stop))
                if not in_flight:
                    return
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            stop.set()
            for future in in_flight:
                future.cancel()


def _pull_one(
    client: BrazeClient,
    record: SendRecord,
    window: Window,
    clock: Callable[[], datetime],
    stop: threading.Event,
) -> PullResult:
    pair = {"campaign_id": record.campaign_id, "send_id": record.send_id}
    if stop.is_set():
        return PullResult(record, window, clock(), error=Cancelled("run stopped", **pair))
    try:
        data = client.send_data_series(
            record.campaign_id, record.send_id, length=window.length, ending_at=window.ending_at
        )
        return PullResult(record, window, clock(), data=data)
    except BrazeAPIError as exc:
        if exc.stops_run:
            stop.set()
        return PullResult(record, window, clock(), error=exc)
    except Exception as exc:  # a bug must not cost the other pairs their data
        logger.exception("unexpected error while pulling %s/%s", *record.key)
        error = UnexpectedResponseError(f"internal error {type(exc).__name__}: {exc}", **pair)
        return PullResult(record, window, clock(), error=error)

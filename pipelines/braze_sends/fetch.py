"""Concurrent pulls: many pairs in flight on a thread pool, fetched ahead in the background.

Each pair is its own unit of work: its request, its retries (in the client), its failure. Every
exception is caught per pair and returned as the pair's error, because an exception escaping a
dlt resource discards the whole run's data and state.

A `Puller` lives for a whole run. Its feeder keeps `workers` requests in flight and buffers
finished results (a bounded number, so memory does not grow with the number of pairs) until the
capture consumes them. It goes on fetching while dlt normalizes and loads a chunk, so the request
budget never idles between chunks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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


class Puller:
    """Pulls `jobs` (most urgent first) on `workers` threads, up to `ahead` results ahead.

    Args:
        jobs: (record, window) per pair.
        clock: the current time (stored as `pulled_at`).
        deadline: `time.monotonic()` after which no new pair is started (time budget).
        ahead: results in flight or waiting to be consumed, at most.
    """

    def __init__(
        self,
        client: BrazeClient,
        jobs: Sequence[tuple[SendRecord, Window]],
        *,
        workers: int,
        clock: Callable[[], datetime],
        deadline: float | None = None,
        ahead: int | None = None,
    ) -> None:
        self.client, self.jobs, self.clock, self.deadline = client, list(jobs), clock, deadline
        self.stop = threading.Event()  # set by an error that concerns every pair
        self._slots = threading.Semaphore(ahead or max(4 * workers, 256))
        self._results: queue.Queue[PullResult] = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="braze-pull")
        self._submitted = 0
        self._consumed = 0
        self._fed = threading.Event()  # the feeder has submitted all it will
        self._feeder = threading.Thread(target=self._feed, name="braze-feeder", daemon=True)
        self._feeder.start()

    @property
    def exhausted(self) -> bool:
        """Every job that will be pulled has been consumed."""
        return self._fed.is_set() and self._consumed >= self._submitted

    def results(self, limit: int | None = None) -> Iterator[PullResult]:
        """Yield finished results as they come, at most `limit` of them (all when None)."""
        taken = 0
        while (limit is None or taken < limit) and not self.exhausted:
            try:
                result = self._results.get(timeout=0.2)
            except queue.Empty:
                continue
            self._consumed += 1
            self._slots.release()
            taken += 1
            yield result

    def close(self) -> None:
        """Stop starting pulls, wait for those in flight."""
        self.stop.set()
        self._slots.release()  # a feeder waiting for a slot sees the stop
        self._feeder.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _feed(self) -> None:
        try:
            for record, window in self.jobs:
                self._slots.acquire()
                if self.stop.is_set() or (self.deadline and time.monotonic() >= self.deadline):
                    break
                future = self._pool.submit(_pull_one, self.client, record, window, self.clock,
                                           self.stop)  # fmt: skip
                self._submitted += 1
                # A future cancelled at close has no result: nobody consumes it any more.
                future.add_done_callback(lambda f: f.cancelled() or self._results.put(f.result()))
        finally:
            self._fed.set()


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

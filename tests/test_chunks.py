"""Chunked runs: one run loads in chunks (bounded memory, progress kept), pulling without pause."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from braze_sends.capture import RunSession
from braze_sends.fetch import Puller
from braze_sends.lifecycle import SendRecord, Window
from tests.conftest import NOW, Loader
from tests.test_pipeline import sent_pairs, stored


def test_a_chunked_run_loads_exactly_what_a_single_load_does(
    tmp_path, sandbox, catalog, sends_file
):
    whole = Loader(tmp_path / "whole", sandbox)
    (tmp_path / "whole").mkdir()
    single = whole.run(sends_file=str(sends_file), chunk_pairs=None)
    chunked_loader = Loader(tmp_path / "chunked", sandbox)
    (tmp_path / "chunked").mkdir()
    chunked = chunked_loader.run(sends_file=str(sends_file), chunk_pairs=7)
    pairs = len(sent_pairs(catalog))
    assert single.summary["chunks"] == 1
    assert chunked.summary["chunks"] == -(-pairs // 7)  # ceil: every chunk was its own load
    assert chunked.summary["pulled"] == single.summary["pulled"] == pairs
    assert chunked.summary["rows"] == single.summary["rows"]
    assert stored(chunked_loader) == stored(whole)
    loads = chunked_loader.sql("SELECT count(*) FROM braze._dlt_loads")[0][0]
    assert loads == chunked.summary["chunks"] + 1  # + the load that registers the file's pairs
    assert chunked_loader.sql("SELECT count(*) FROM braze.sends") == [(pairs,)]


def test_budgets_hold_for_the_whole_chunked_run(loader, catalog, sends_file, sandbox):
    result = loader.run(sends_file=str(sends_file), chunk_pairs=4, max_requests=10)
    assert result.summary["pulled"] == 10
    assert result.summary["deferred"] == len(sent_pairs(catalog)) - 10
    assert len(sandbox.stats.by_pair) == 10


def test_the_puller_keeps_fetching_while_nobody_consumes():
    """Between chunks (while dlt loads) the feeder goes on, up to its bounded buffer."""

    class SlowClient:
        calls = 0
        lock = threading.Lock()

        def send_data_series(self, campaign_id, send_id, **kw):
            with self.lock:
                SlowClient.calls += 1
            time.sleep(0.01)
            return []

    now = datetime(2026, 11, 20, tzinfo=UTC)
    jobs = [(SendRecord(f"c{i}", "s", registered_at=now), Window(1, now)) for i in range(200)]
    puller = Puller(SlowClient(), jobs, workers=4, clock=lambda: now, ahead=50)
    first = list(puller.results(10))
    time.sleep(0.6)  # "dlt is loading the chunk"
    assert len(first) == 10
    assert SlowClient.calls == 60  # it went on: 10 consumed + 50 ahead, and no further
    rest = list(puller.results())
    assert len(rest) == 190 and puller.exhausted
    puller.close()


def test_a_session_without_due_pairs_is_finished_after_one_chunk(loader):
    session = RunSession()
    result = loader.run(chunk_pairs=5, now=NOW)
    assert result.summary["chunks"] == 1 and result.summary["due"] == 0
    assert not session.finished  # a fresh session has not planned yet

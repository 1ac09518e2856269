"""Schedule-safe runs: one run at a time, and a run killed with SIGKILL is completed by the next.

The runs are real `braze-sends run` processes against a sandbox whose clock is frozen (so every
run sees the same numbers), killed from outside with SIGKILL at a given moment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from braze_sends.sandbox import DEMO_API_KEY, Catalog, SandboxClock, SandboxServer
from tests.conftest import run_cli

SUMS = """
SELECT count(*), sum(sent), sum(opens), round(sum(revenue), 4), sum(conversions)
FROM braze.send_variation_daily
"""


@pytest.fixture
def frozen(tmp_path):
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        8, start=now.date() - timedelta(days=12), days=12, sends=400, campaigns=20
    )
    with SandboxServer(catalog, clock=SandboxClock(now, frozen=True)) as server:
        sends = tmp_path / "sends.csv"
        catalog.write_sends_file(sends, as_of=now)
        yield server, sends


def start_run(server, sends, home: Path, *extra: str) -> subprocess.Popen:
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "SOURCES__BRAZE__API_KEY": DEMO_API_KEY,
        "SOURCES__BRAZE__BASE_URL": server.url,
        "DLT_DATA_DIR": str(home / "dlt"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "braze_sends.cli", "run", "--sends", str(sends), *extra],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout=300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def sums(home: Path):
    with duckdb.connect(str(home / "braze_sends.duckdb"), read_only=True) as con:
        return con.sql(SUMS).fetchone(), con.sql("SELECT count(*) FROM braze.sends").fetchone()


def wait_for(condition, timeout=120.0, every=0.005):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(every)


@pytest.fixture
def uninterrupted(frozen, tmp_path):
    server, sends = frozen
    code, _, err = finish(start_run(server, sends, tmp_path / "reference"))
    assert code == 0, err
    server.stats.reset()
    return sums(tmp_path / "reference")


def test_a_second_concurrent_run_is_refused_at_once(frozen, tmp_path):
    server, sends = frozen
    server.latency = (0.05, 0.05)
    first = start_run(server, sends, tmp_path / "home", "--workers", "2")
    wait_for(lambda: server.stats.total > 5)
    started = time.monotonic()
    second = run_cli(
        "run",
        "--sends",
        str(sends),
        cwd=tmp_path / "home",
        env={
            "SOURCES__BRAZE__API_KEY": DEMO_API_KEY,
            "SOURCES__BRAZE__BASE_URL": server.url,
            "DLT_DATA_DIR": str(tmp_path / "home" / "dlt"),
        },
    )
    assert second.returncode == 3
    assert "another run of pipeline 'braze_sends' is in progress (pid" in second.stderr
    assert time.monotonic() - started < 15  # it did not wait for the first run
    server.latency = None
    code, _, err = finish(first)
    assert code == 0, err


def test_a_run_killed_mid_extract_is_redone_by_the_next_with_identical_sums(
    frozen, tmp_path, uninterrupted
):
    server, sends = frozen
    home = tmp_path / "home"
    server.latency = (0.01, 0.02)
    run = start_run(server, sends, home, "--workers", "4")
    wait_for(lambda: server.stats.total >= 150)
    run.send_signal(signal.SIGKILL)
    assert finish(run)[0] == -signal.SIGKILL
    assert not list((home / "dlt" / "pipelines" / "braze_sends").glob("load/normalized/*"))
    server.latency = None
    code, _, err = finish(start_run(server, sends, home))
    assert code == 0, err
    assert sums(home) == uninterrupted


def test_a_run_killed_mid_load_is_completed_by_the_next_with_identical_sums(
    frozen, tmp_path, uninterrupted
):
    server, sends = frozen
    home = tmp_path / "home"
    run = start_run(server, sends, home)
    normalized = home / "dlt" / "pipelines" / "braze_sends" / "load" / "normalized"
    wait_for(lambda: normalized.exists() and any(normalized.iterdir()), every=0.001)
    run.send_signal(signal.SIGKILL)
    assert finish(run)[0] == -signal.SIGKILL
    pending = list(normalized.iterdir())
    assert pending, "the kill came too late: no load package was left pending"
    requests_before = server.stats.total
    code, out, err = finish(start_run(server, sends, home))
    assert code == 0, err
    assert "finished loading what a previous, interrupted run had left pending" in out
    assert not any(normalized.iterdir())
    assert sums(home) == uninterrupted
    assert server.stats.total > requests_before  # and then it ran its own capture


def test_logs_can_be_json_lines_for_log_shippers(frozen, tmp_path):
    server, sends = frozen
    done = run_cli(
        "run",
        "--sends",
        str(sends),
        "--log-format",
        "json",
        cwd=tmp_path,
        env={"SOURCES__BRAZE__API_KEY": DEMO_API_KEY, "SOURCES__BRAZE__BASE_URL": server.url},
    )
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any("pairs registered" in e["message"] for e in entries)

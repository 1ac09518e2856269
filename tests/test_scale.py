"""10,000 pairs in one run: one resource with a bounded pool, not a resource per pair.

A literal dlt resource per pair fails past ~1,000 pairs (RecursionError in extract); this runs
the CLI against a sandbox in its own process, as a user would, and checks every pair landed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import duckdb
import pytest

from braze_sends.sandbox import DEMO_API_KEY
from tests.conftest import run_cli

PAIRS = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sandbox_process(tmp_path):
    port, sends = free_port(), tmp_path / "sends.csv"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "braze_sends.cli",
            "sandbox",
            "--port",
            str(port),
            "--sends",
            str(PAIRS),
            "--campaigns",
            "500",
            "--days",
            "13",
            "--write-sends",
            str(sends),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not sends.exists() or not _listening(port):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "sandbox did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", sends
    process.terminate()
    process.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(600)
def test_ten_thousand_pairs_load_in_one_run(sandbox_process, tmp_path):
    url, sends = sandbox_process
    expected = len(sends.read_text().splitlines()) - 1
    # The catalog spreads sends over 13 days and writes only those sent by now: just after
    # midnight most of today's sends are still in the future, so at least 12 of 13 days are in.
    assert expected >= PAIRS * 0.9
    env = {"SOURCES__BRAZE__API_KEY": DEMO_API_KEY, "SOURCES__BRAZE__BASE_URL": url}
    done = run_cli(
        "run",
        "--sends",
        str(sends),
        "--workers",
        "16",
        "--requests-per-hour",
        "100000000",
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RecursionError" not in done.stderr
    assert f"{expected:,} pulled, 0 failed" in done.stdout
    with duckdb.connect(str(tmp_path / "braze_sends.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM braze.sends").fetchone() == (expected,)
        pairs = con.sql(
            "SELECT count(*) FROM (SELECT DISTINCT campaign_id, send_id FROM braze.send_daily)"
        ).fetchone()
        assert pairs == (expected,)

"""10,000 pairs in one run: one resource with a bounded pool, not a resource per pair.

A literal dlt resource per pair fails past ~1,000 pairs (RecursionError in extract); this runs
the CLI against a sandbox in its own process, as a user would, and checks every pair landed.
"""

from __future__ import annotations

import duckdb
import pytest

from braze_sends.sandbox import DEMO_API_KEY
from braze_sends.sandbox.process import sandbox_process as run_sandbox
from tests.conftest import run_cli

PAIRS = 10_000


@pytest.fixture
def sandbox_process(tmp_path):
    with run_sandbox(tmp_path / "sandbox", sends=PAIRS, campaigns=500, timeout=60) as started:
        yield started


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

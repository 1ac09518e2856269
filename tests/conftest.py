"""Shared fixtures: an isolated dlt environment per test, the Braze sandbox, pipelines, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dlt
import duckdb
import pytest

from braze_sends.runner import make_pipeline, run_pipeline
from braze_sends.sandbox import DEMO_API_KEY, Catalog, SandboxClock, SandboxServer

# A fixed moment for deterministic runs: the sandbox's clock and the pipeline's `now`.
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own working directory and dlt data dir, and no inherited settings."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "DESTINATION__", "BRAZE_SENDS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def small_catalog(seed: int = 11, sends: int = 40, campaigns: int = 8) -> Catalog:
    """Sends over the 12 days up to NOW: all inside Braze's retention."""
    return Catalog.generate(
        seed, start=NOW.date() - timedelta(days=11), days=12, sends=sends, campaigns=campaigns
    )


@pytest.fixture
def catalog() -> Catalog:
    return small_catalog()


@pytest.fixture
def sandbox(catalog: Catalog) -> Iterator[SandboxServer]:
    with SandboxServer(catalog, clock=SandboxClock(NOW, frozen=True)) as server:
        yield server


@pytest.fixture
def sends_file(tmp_path: Path, catalog: Catalog) -> Path:
    path = tmp_path / "sends.csv"
    catalog.write_sends_file(path, as_of=NOW)
    return path


class Loader:
    """Runs the real pipeline against the sandbox into a DuckDB file of the test."""

    def __init__(self, tmp_path: Path, server: SandboxServer) -> None:
        self.db = tmp_path / "braze_sends.duckdb"
        self.pipelines_dir = tmp_path / "pipelines"
        self.server = server

    def pipeline(self, name: str = "braze_sends", destination=None) -> dlt.Pipeline:
        return make_pipeline(
            pipeline_name=name,
            destination=destination or dlt.destinations.duckdb(str(self.db)),
            pipelines_dir=str(self.pipelines_dir),
        )

    def run(self, pipeline: dlt.Pipeline | None = None, **source_args):
        source_args.setdefault("api_key", DEMO_API_KEY)
        source_args.setdefault("base_url", self.server.url)
        source_args.setdefault("now", self.server.clock.now())
        return run_pipeline(pipeline or self.pipeline(), **source_args)

    def sql(self, query: str, *params):
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(query, list(params)).fetchall()


@pytest.fixture
def loader(tmp_path: Path, sandbox: SandboxServer) -> Loader:
    return Loader(tmp_path, sandbox)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`braze-sends ARGS` in a subprocess, as a user or cron runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "braze_sends.cli", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_terminal_summary(terminalreporter) -> None:
    """The reliability report: every fault-matrix scenario with its observed outcome."""
    import sys

    rows = []
    for name in ("test_fault_matrix", "test_crash_matrix", "test_hostile_input"):
        module = sys.modules.get(name) or sys.modules.get(f"tests.{name}")  # rootdir imports
        rows += getattr(module, "OBSERVED", []) if module else []
    if not rows:
        return
    from braze_sends.report import table

    terminalreporter.write_sep("=", "reliability report")
    terminalreporter.write_line(table(["scenario", "expected", "observed"], rows))

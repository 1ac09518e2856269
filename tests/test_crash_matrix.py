"""Crash recovery: `braze-sends run` killed with SIGKILL during extract, normalize and load, on
DuckDB and PostgreSQL, then run again: the warehouse ends identical to an uninterrupted run's.

Every run is a real `braze-sends run` process against one sandbox whose clock is frozen, so every
run sees the same numbers. Each kill is classified by what it left in dlt's working folder
(`<DLT_DATA_DIR>/pipelines/braze_sends/`) and by the sandbox's request count:

- extract: pulls were in flight (some pairs requested, not all) and no package was committed;
- normalize: `load/new/<load_id>` was being written, or the package was already committed to
  `load/normalized` while its extracted copy still existed;
- load: a package in `load/normalized` had started or completed jobs.

A kill that lands elsewhere is retried with another timing (a bounded number of times), and the
test asserts the phase it claims. "Identical" means, for `send_variation_daily`, `send_daily`,
`sends` and `campaigns`: the row count, the distinct keys, the sum of every numeric column, and
the `sends` statuses (`sends.requests` counts the pulls made, the killed run's included, so it is
left out). After a kill during normalize or load, a first rerun that pulls nothing
(`--max-requests 0`) must already restore those contents from the pending package alone; a full
rerun then leaves them unchanged.

The last scenario kills the run at the worst moment of a load, from a hook inside the process:
a load job's copy into the staging table has committed and dlt has not recorded it yet, so the
next run copies that file again. `make reliability` prints the observed outcomes as a table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
from psycopg2 import sql

from braze_sends.columns import DAILY_KEY, SENDS_KEY, VARIATION_KEY
from braze_sends.sandbox import DEMO_API_KEY, Catalog, SandboxClock, SandboxServer
from braze_sends.settings import DAILY_TABLE, SENDS_TABLE, VARIATION_TABLE
from tests.test_destinations import PG_START, PG_URL

OBSERVED: list[tuple[str, str, str]] = []  # (scenario, expected, observed): the report

SENDS, CAMPAIGNS = 60, 6
TABLES = {
    VARIATION_TABLE: VARIATION_KEY,
    DAILY_TABLE: DAILY_KEY,
    SENDS_TABLE: SENDS_KEY,
    "campaigns": ("campaign_id",),
}
NOT_SUMMED = {"requests"}  # sends.requests: every pull made, the killed run's included
NUMERIC = {"BIGINT", "DOUBLE", "bigint", "double precision"}
DATA_SERIES = "/sends/data_series"
PENDING = "finished loading what a previous, interrupted run had left pending"
NAMES = {"duckdb": "DuckDB", "postgres": "PostgreSQL"}
PHASES = ("extract", "normalize", "load")
MAX_ATTEMPTS = 8
# The timing of attempt n: the share of pairs requested (extract), or seconds to wait after
# normalize started writing (normalize) or after the first load job started (load).
TIMINGS = {
    "extract": (0.3, 0.6, 0.15, 0.45, 0.8, 0.05, 0.25, 0.5),
    "normalize": (0.0, 0.002, 0.004, 0.001, 0.006, 0.0, 0.003, 0.0),
    "load": (0.02, 0.0, 0.06, 0.01, 0.1, 0.04, 0.0, 0.03),
}
# `braze-sends run`, SIGKILLed by itself once the first load job of table $KILL_AFTER_COPY_OF
# has copied its file (committed), before dlt records the job as done.
KILL_AFTER_COPY = """
import os, signal, sys
from dlt.common.destination.client import RunnableLoadJob

release = RunnableLoadJob._release
table = os.environ["KILL_AFTER_COPY_OF"]

def _release(job, next_state):
    if next_state == "completed" and os.path.basename(job._file_path).startswith(table + "."):
        os.kill(os.getpid(), signal.SIGKILL)
    release(job, next_state)

RunnableLoadJob._release = _release
from braze_sends.cli import main
sys.exit(main(sys.argv[1:]))
"""
# Where a table's load jobs copy to: the staging dataset (merges) or the dataset (appends).
STAGED = {VARIATION_TABLE: True, "campaigns": True, "_dlt_pipeline_state": False}
WORST_MOMENTS = [
    # the merge would insert the job's rows twice (the batches skip dlt's dedup pass)
    ("duckdb", VARIATION_TABLE),
    ("postgres", VARIATION_TABLE),
    # the copy again would break PostgreSQL's unique constraint on `_dlt_id`, in every run
    ("postgres", "campaigns"),
    ("postgres", "_dlt_pipeline_state"),
]


@dataclass
class Snapshot:
    """dlt's working folder of a pipeline, at the moment of a kill."""

    extracting: list[str]  # packages of an extract in progress: normalize/<tmp>/<load_id>
    extracted: list[str]  # normalize/extracted/<load_id>: extracted, not normalized
    normalizing: dict[str, int]  # load/new/<load_id>: files normalized so far
    jobs: dict[str, dict[str, int]]  # load/normalized/<load_id>: jobs per state
    loaded: list[str]  # load/loaded/<load_id>

    @classmethod
    def take(cls, root: Path) -> Snapshot:
        def names(folder: Path) -> list[str]:
            return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

        def count(folder: Path) -> int:
            return len(list(folder.iterdir())) if folder.is_dir() else 0

        normalize, load = root / "normalize", root / "load"
        states = ("new_jobs", "started_jobs", "completed_jobs", "failed_jobs")
        return cls(
            extracting=[
                f"{tmp}/{load_id}"
                for tmp in names(normalize)
                if tmp != "extracted"
                for load_id in names(normalize / tmp)
            ],
            extracted=names(normalize / "extracted"),
            normalizing={p: count(load / "new" / p / "new_jobs") for p in names(load / "new")},
            jobs={
                p: {s: count(load / "normalized" / p / s) for s in states}
                for p in names(load / "normalized")
            },
            loaded=names(load / "loaded"),
        )

    @property
    def phase(self) -> str:
        """The step the pipeline was in, as its folder shows it."""
        if any(j["started_jobs"] or j["completed_jobs"] for j in self.jobs.values()):
            return "load"
        if self.normalizing or set(self.extracted) & set(self.jobs):
            return "normalize"
        if self.extracted:
            return "between extract and normalize"
        if self.jobs:
            return "between normalize and load"
        if self.extracting:  # (a run first loads its sends file's registrations, then pulls)
            return "extract"
        return "after load" if self.loaded else "before extract"

    def describe(self) -> str:
        if self.phase == "load":
            jobs = next(j for j in self.jobs.values() if j["started_jobs"] or j["completed_jobs"])
            return (
                f"{jobs['completed_jobs']}/{sum(jobs.values())} jobs done, "
                f"{jobs['started_jobs']} started"
            )
        if self.phase == "normalize":
            if self.normalizing:
                files = sum(self.normalizing.values())
                return f"normalize writing its package ({files} file(s) so far), not committed"
            return "the package committed, its extracted copy not yet deleted"
        return "no package committed"


@dataclass
class Home:
    """One pipeline's home: its folder, its warehouse, and how to run `braze-sends` there."""

    path: Path
    kind: str
    server: SandboxServer
    sends: Path
    dataset: str = "braze"

    @property
    def root(self) -> Path:
        """dlt's working folder of the pipeline."""
        return self.path / "dlt" / "pipelines" / "braze_sends"

    def command(self, *args: str, program: tuple[str, ...] = (), verb: str = "run") -> list[str]:
        target = ["--destination", "postgres", "--dataset", self.dataset]
        return [
            sys.executable,
            *(program or ("-m", "braze_sends.cli")),
            verb,
            *(target if self.kind == "postgres" else []),
            *args,
        ]

    def start(
        self,
        *args: str,
        program: tuple[str, ...] = (),
        kill_after_copy_of: str = "",
        verb: str = "run",
    ) -> subprocess.Popen:
        self.path.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KILL_AFTER_COPY_OF": kill_after_copy_of,
            "SOURCES__BRAZE__API_KEY": DEMO_API_KEY,
            "SOURCES__BRAZE__BASE_URL": self.server.url,
            "DESTINATION__POSTGRES__CREDENTIALS": PG_URL,
            "DLT_DATA_DIR": str(self.path / "dlt"),
        }
        return subprocess.Popen(
            self.command(*args, program=program, verb=verb),
            env=env,
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str) -> tuple[int, str, str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=300)
        return process.returncode, out, err

    def register(self) -> None:
        """Register the sends file's pairs (its own load), so the run to kill has only pulls."""
        process = self.start("--sends", str(self.sends), verb="register")
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err

    def query(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        """`text` on this warehouse; `?` stands for a parameter."""
        if self.kind == "duckdb":
            with duckdb.connect(str(self.path / "braze_sends.duckdb"), read_only=True) as con:
                return con.execute(text, list(params)).fetchall()
        con = psycopg2.connect(PG_URL)
        try:
            with con.cursor() as cur:
                cur.execute(text.replace("?", "%s"), params)
                return cur.fetchall()
        finally:
            con.close()

    def contents(self) -> dict[str, dict[str, Any]]:
        """Per table: rows, distinct keys, the sum of every numeric column; `sends`: statuses."""
        found = {}
        for table, key in TABLES.items():
            columns = self.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ?",
                self.dataset,
                table,
            )
            numeric = sorted(
                name
                for name, kind in columns
                if kind in NUMERIC and not name.startswith("_dlt") and name not in NOT_SUMMED
            )
            ref = f'"{self.dataset}"."{table}"'
            keys = ", ".join(f'"{k}"' for k in key)
            sums = "".join(f', sum("{name}")' for name in numeric)
            row = self.query(
                f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {ref}) k)"
                f"{sums} FROM {ref}"
            )[0]
            aggregates = {"rows": row[0], "distinct keys": row[1]}
            for name, total in zip(numeric, row[2:]):
                aggregates[f"sum({name})"] = None if total is None else round(float(total), 6)
            if table == SENDS_TABLE:
                for status, n in self.query(f"SELECT status, count(*) FROM {ref} GROUP BY 1"):
                    aggregates[f"status {status}"] = n
            found[table] = aggregates
        return found

    def rows_of_load(self, table: str, load_id: str) -> int:
        """Rows package `load_id` copied into `table` (its staging table, for a merge)."""
        dataset = f"{self.dataset}_staging" if STAGED[table] else self.dataset
        ref = f'"{dataset}"."{table}"'
        return self.query(f"SELECT count(*) FROM {ref} WHERE _dlt_load_id = ?", load_id)[0][0]


@dataclass
class World:
    """The frozen sandbox, its sends file, and a home per pipeline of the tests."""

    server: SandboxServer
    sends: Path
    due: int
    folder: Path
    new_schema: Callable[[], str]
    references: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def home(self, kind: str) -> Home:
        path = self.folder / f"{kind}-{uuid.uuid4().hex[:8]}"
        dataset = self.new_schema() if kind == "postgres" else "braze"
        return Home(path, kind, self.server, self.sends, dataset)

    def reference(self, kind: str) -> dict[str, dict[str, Any]]:
        """The contents an uninterrupted run leaves in this kind of warehouse."""
        if kind not in self.references:
            home = self.home(kind)
            code, _, err = home.run("--sends", str(self.sends))
            assert code == 0, err
            self.references[kind] = home.contents()
            assert self.references[kind][SENDS_TABLE]["status open"] == self.due
        return self.references[kind]

    def requests(self) -> int:
        return self.server.stats.by_path.get(DATA_SERIES, 0)


@pytest.fixture(scope="module")
def new_schema() -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL schema names, each dropped (with its staging schema) after the module."""
    try:
        psycopg2.connect(PG_URL).close()
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc}); start it: {PG_START}")
    made: list[str] = []

    def make() -> str:
        made.append(f"braze_crash_{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    con = psycopg2.connect(PG_URL)
    try:
        with con, con.cursor() as cur:
            for name in made:
                for schema in (name, f"{name}_staging"):
                    cur.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                    )
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, new_schema) -> Iterator[World]:
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        17, start=now.date() - timedelta(days=12), days=12, sends=SENDS, campaigns=CAMPAIGNS
    )
    folder = tmp_path_factory.mktemp("crash")
    sends = folder / "sends.csv"
    due = catalog.write_sends_file(sends, as_of=now)
    with SandboxServer(catalog, clock=SandboxClock(now, frozen=True)) as server:
        yield World(server, sends, due, folder, new_schema)


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the run never reached the moment to kill it"
        time.sleep(0.0005)


def any_file(pattern: str, root: Path) -> bool:
    return next(root.glob(pattern), None) is not None


def kill_during(world: World, home: Home, phase: str, attempt: int) -> tuple[Snapshot, int, int]:
    """Start a run and SIGKILL it at attempt `attempt`'s timing for `phase`.

    Returns what it left in dlt's folder, its exit code and the pairs it requested.
    """
    timing = TIMINGS[phase][attempt % len(TIMINGS[phase])]
    triggers = {
        "extract": lambda: world.requests() >= max(1, int(world.due * timing)),
        "normalize": lambda: any_file("load/new/*", home.root),
        "load": lambda: any_file("load/normalized/*/started_jobs/*", home.root),
    }
    world.server.stats.reset()
    home.register()
    process = home.start()
    try:
        wait_for(lambda: triggers[phase]() or process.poll() is not None)
        if phase != "extract":
            time.sleep(timing)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    return Snapshot.take(home.root), process.returncode, world.requests()


def crash(world: World, kind: str, phase: str) -> tuple[Home, Snapshot, int, int]:
    """A run killed during `phase`, retried with other timings until one lands there."""
    missed = []
    for attempt in range(MAX_ATTEMPTS):
        home = world.home(kind)
        snapshot, code, requests = kill_during(world, home, phase, attempt)
        in_flight = phase != "extract" or 0 < requests < world.due
        if snapshot.phase == phase and in_flight:
            assert code == -signal.SIGKILL
            return home, snapshot, requests, attempt + 1
        missed.append(f"{snapshot.phase} ({requests} requests)")
    pytest.fail(f"no kill landed during {phase} in {MAX_ATTEMPTS} attempts: {missed}")


def assert_nothing_pending(home: Home) -> None:
    left = Snapshot.take(home.root)
    assert not (left.extracting or left.extracted or left.normalizing or left.jobs), left


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_run_killed_during_a_phase_is_completed_by_the_next_with_identical_contents(
    world: World, kind: str, phase: str
):
    reference = world.reference(kind)
    home, snapshot, requests, attempts = crash(world, kind, phase)
    killed = f"killed with {snapshot.describe()}"
    if phase == "extract":
        killed = f"killed after {requests}/{world.due} pulls, {snapshot.describe()}"
    if phase == "extract":
        assert not (snapshot.extracted or snapshot.normalizing or snapshot.jobs)
        world.server.stats.reset()
        code, out, err = home.run("--sends", str(world.sends))
        assert code == 0, err
        assert PENDING not in out  # nothing of the killed run survived: the pull is redone
        assert world.requests() == world.due
        assert home.contents() == reference
        recovered = f"rerun pulled all {world.due} pairs again"
    else:
        # The pending package alone restores everything (this run pulls nothing) ...
        world.server.stats.reset()
        code, out, err = home.run("--max-requests", "0")
        assert code == 0, err
        assert PENDING in out and world.server.stats.total == 0
        assert home.contents() == reference
        # ... and a full run afterwards changes nothing.
        code, _, err = home.run("--sends", str(world.sends))
        assert code == 0, err
        assert home.contents() == reference
        recovered = "rerun loaded the pending package with 0 requests, then a full run"
    assert_nothing_pending(home)
    OBSERVED.append(
        (
            f"kill -9 during {phase} ({NAMES[kind]})",
            "next run completes, identical contents",
            f"{killed} (attempt {attempts}); {recovered}; {len(TABLES)} tables identical",
        )
    )


@pytest.mark.parametrize("kind, table", WORST_MOMENTS)
def test_a_load_job_copied_but_not_recorded_is_neither_loaded_twice_nor_stuck(
    world: World, kind: str, table: str
):
    """The worst moment: a job's rows are committed, dlt still lists the job as started."""
    reference = world.reference(kind)
    home = world.home(kind)
    home.register()
    process = home.start(program=("-c", KILL_AFTER_COPY), kill_after_copy_of=table)
    process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL
    snapshot = Snapshot.take(home.root)
    assert snapshot.phase == "load"
    ((load_id, _),) = snapshot.jobs.items()
    started = os.listdir(home.root / "load" / "normalized" / load_id / "started_jobs")
    assert any(name.startswith(f"{table}.") for name in started)
    copied = home.rows_of_load(table, load_id)
    assert copied > 0  # the copy did commit

    code, out, err = home.run("--max-requests", "0")  # loads the package again, pulls nothing
    assert code == 0, err
    assert PENDING in out
    found = home.contents()
    assert found[VARIATION_TABLE]["rows"] == found[VARIATION_TABLE]["distinct keys"]
    assert found == reference
    assert home.rows_of_load(table, load_id) in (0, copied)  # staged rows: merged, then kept
    assert_nothing_pending(home)
    observed = (
        f"killed with {snapshot.describe()}, {copied:,} row(s) of `{table}` copied; "
        f"rerun exit 0, redid that table's jobs: {len(TABLES)} tables identical, no duplicate"
    )
    scenario = f"kill -9 after a `{table}` job committed, before dlt recorded it ({NAMES[kind]})"
    OBSERVED.append((scenario, "the job is redone once: no row twice, no run stuck", observed))

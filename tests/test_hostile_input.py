"""Hostile and bad input through the real CLI: a clear message, a non-zero exit where the run
must stop, and nothing half-loaded.

One DuckDB warehouse is loaded first, from a messy but valid sends file (a BOM, CRLF line ends,
blank lines, repeated pairs, an extra column, a header in another case) whose ids hold the
characters that break URLs and SQL (`& ? / # = + % ;`, spaces, quotes) and the longest id Braze
allows. The sandbox logs the query parameters it received, so the tests show that each id reached
it exactly (URL-encoded, never spliced into the URL) and landed in the tables and the reporting
views. Then every input that must stop the run is tried against that warehouse: each exits
non-zero, says what to fix, and leaves the tables' row counts, `status --json` (the registry)
and dlt's working folder exactly as the good load left them.
`make reliability` prints the observed outcomes as a table.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from braze_sends.sandbox import ALL_PERMISSIONS, DEMO_API_KEY, Catalog, SandboxClock, SandboxServer
from braze_sends.settings import DAILY_TABLE, SENDS_TABLE, VARIATION_TABLE

OBSERVED: list[tuple[str, str, str]] = []  # (scenario, expected, observed): the report

NO_SENDS_PERMISSION = "key-without-sends-data-series"
OTHER_INSTANCE = "key-of-another-braze-instance"
DATA_SERIES = "/sends/data_series"
CAMPAIGN_DETAILS = "/campaigns/details"
# Pairs whose ids break naive URLs (`&`, `?`, `#`, `/`, `=`, `+`, `%`, spaces) and naive SQL
# (quotes, `;`), and the longest id Braze allows.
HOSTILE = [
    ("cmp&a=1", "send&b=2"),
    ("cmp?x", "send?y=z"),
    ("cmp/one", "send/two/.."),
    ("cmp#frag", "send#frag"),
    ("cmp with spaces", "send with spaces"),
    ("o'brien", "it's'; DROP TABLE sends; --"),
    ('say "hi"', 'send "quoted"'),
    ("a+b%20c;d", "send+1%2F"),
    ("c" * 64, "s" * 64),
]
NEW_PAIR = "cmp-not-yet-registered,send-not-yet-registered,\n"


@dataclass
class Warehouse:
    """A pipeline's home (DuckDB file and dlt folder) and how to run `braze-sends` there."""

    path: Path
    base_url: str
    baseline: dict[str, Any] = field(default_factory=dict)  # what the good load left
    received: list[Any] = field(default_factory=list)  # the sandbox's log of the good load

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        full_env = {
            **os.environ,
            "SOURCES__BRAZE__API_KEY": DEMO_API_KEY,
            "SOURCES__BRAZE__BASE_URL": self.base_url,
            "SOURCES__BRAZE__BACKOFF_SECONDS": "0.01",
            "DLT_DATA_DIR": str(self.path / "dlt"),
            **env,
        }
        return subprocess.run(
            [sys.executable, "-m", "braze_sends.cli", *args],
            env=full_env,
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path / "braze_sends.duckdb"), read_only=True) as con:
            return con.execute(query, list(params)).fetchall()

    def row_counts(self) -> dict[str, int]:
        """Rows of every table of the dataset, dlt's own (`_dlt_loads`...) included."""
        names = self.sql(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'braze' AND table_type = 'BASE TABLE'"
        )
        return {n: self.sql(f'SELECT count(*) FROM braze."{n}"')[0][0] for (n,) in names}

    def registry(self) -> dict[str, Any]:
        """`status --json`, without what moves with the clock."""
        done = self.cli("status", "--json")
        assert done.returncode in (0, 4), done.stderr
        report = json.loads(done.stdout)
        report.pop("now")
        for key in ("at_risk", "recently_expired", "open"):
            for send in report[key]:
                send.pop("seconds_to_close")
        return report

    def pending(self) -> list[str]:
        """What a run left in dlt's working folder for the next one (nothing, after a stop)."""
        root = self.path / "dlt" / "pipelines" / "braze_sends"
        left = [
            p
            for p in (root / "normalize").glob("*/*")
            if p.is_dir() and p.parent.name != "normalize"
        ]
        left += [p for p in (root / "load").glob("*/*") if p.parent.name in ("new", "normalized")]
        return sorted(str(p.relative_to(root)) for p in left)

    def state(self) -> dict[str, Any]:
        return {"rows": self.row_counts(), "registry": self.registry(), "pending": self.pending()}


def write_csv(path: Path, rows: list[list[str]], *, bom: bool = True, eol: str = "\r\n") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=eol).writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        23, start=now.date() - timedelta(days=6), days=6, sends=8, campaigns=3
    )
    for index, (campaign_id, send_id) in enumerate(HOSTILE):
        catalog.add_campaign(campaign_id, channels=("email", "ios_push"))
        catalog.add_send(
            campaign_id=campaign_id, send_id=send_id, sent_at=now - timedelta(days=1 + index % 5)
        )
    keys = {
        DEMO_API_KEY: ALL_PERMISSIONS,
        NO_SENDS_PERMISSION: ALL_PERMISSIONS - {"sends.data_series"},
    }
    with SandboxServer(catalog, clock=SandboxClock(now, frozen=True), api_keys=keys) as server:
        yield server


@pytest.fixture(scope="module")
def warehouse(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The good load every stopped run is compared with: a messy but valid sends file."""
    home = Warehouse(tmp_path_factory.mktemp("hostile"), sandbox.url)
    pairs = [[c, s, at.isoformat()] for c, s, at in sandbox.catalog.pairs()]
    messy = home.path / "sends.csv"
    rows = [["Campaign_ID ", " SEND_ID", "sent_at", "note"], []]
    for index, (campaign_id, send_id, sent_at) in enumerate(pairs):
        rows.append([f" {campaign_id} ", send_id, sent_at if index % 2 else "", "a note, quoted"])
        if index % 3 == 0:
            rows += [[], [campaign_id, send_id, sent_at, "the same pair again"]]
    write_csv(messy, rows)
    sandbox.stats.reset()
    done = home.cli("run", "--sends", str(messy))
    assert done.returncode == 0, done.stderr
    assert f"{len(pairs)} registered ({len(pairs)} new)" in done.stdout
    home.baseline = home.state()
    home.received = sandbox.stats.log
    return home


def test_a_messy_but_valid_sends_file_registers_each_pair_once(
    warehouse: Warehouse, sandbox: SandboxServer
):
    pairs = {(c, s) for c, s, _ in sandbox.catalog.pairs()}
    registry = warehouse.baseline["registry"]
    assert sum(registry["counts"].values()) == len(pairs)
    assert {(s["campaign_id"], s["send_id"]) for s in registry["open"]} == pairs
    assert warehouse.baseline["rows"][SENDS_TABLE] == len(pairs)
    assert warehouse.sql("SELECT count(DISTINCT (campaign_id, send_id)) FROM braze.sends") == [
        (len(pairs),)
    ]
    assert warehouse.baseline["pending"] == []
    OBSERVED.append(
        (
            "sends file with a BOM, CRLF, blank lines, repeated pairs, an extra column",
            "loads, each pair once",
            (
                f"exit 0; {len(pairs)} pairs registered once each, "
                f"{warehouse.baseline['rows'][VARIATION_TABLE]:,} rows loaded"
            ),
        )
    )


def test_ids_reach_braze_url_encoded_exactly_as_given(warehouse: Warehouse):
    """The sandbox decodes the query it received: each id must come back exactly."""
    received = {
        (r.params.get("campaign_id"), r.params.get("send_id"))
        for r in warehouse.received
        if r.path == DATA_SERIES and r.status == 200
    }
    details = {
        r.params.get("campaign_id")
        for r in warehouse.received
        if r.path == CAMPAIGN_DETAILS and r.status == 200
    }
    for campaign_id, send_id in HOSTILE:
        assert (campaign_id, send_id) in received, (campaign_id, send_id)
        assert campaign_id in details
        rows = warehouse.sql(
            "SELECT count(*), sum(sent) FROM braze.send_variation_daily "
            "WHERE campaign_id = ? AND send_id = ?",
            campaign_id,
            send_id,
        )[0]
        assert rows[0] > 0 and rows[1] > 0, (campaign_id, send_id)
    OBSERVED.append(
        (
            "ids with & ? / # = + % ; spaces and quotes, and 64-character ids",
            "URL-encoded; each id arrives and loads exactly",
            f"the sandbox received all {len(HOSTILE)} pairs verbatim; each has rows",
        )
    )


def test_an_id_with_a_quote_loads_into_the_tables_and_the_reporting_views(
    warehouse: Warehouse,
):
    campaign_id, send_id = HOSTILE[5]  # "o'brien", "it's'; DROP TABLE sends; --"
    summary = warehouse.sql(
        "SELECT status, sent, campaign_name FROM braze.report_send_summary "
        "WHERE campaign_id = ? AND send_id = ?",
        campaign_id,
        send_id,
    )
    ((status, sent, campaign_name),) = summary
    assert status == "open" and sent > 0 and campaign_name
    daily = warehouse.sql(
        "SELECT count(*) FROM braze.report_send_channel_daily WHERE campaign_id = ?", campaign_id
    )
    assert daily[0][0] > 0
    assert warehouse.sql("SELECT count(*) FROM braze.sends") == [
        (warehouse.baseline["rows"][SENDS_TABLE],)
    ]  # the "DROP TABLE" in the id stayed a value
    registry = {(s["campaign_id"], s["send_id"]) for s in warehouse.baseline["registry"]["open"]}
    assert (campaign_id, send_id) in registry
    OBSERVED.append(
        (
            "an id with ' and a SQL comment in it",
            "a value, in the tables and the views",
            f"loaded: report_send_summary shows it (sent {sent:,}); status --json lists it",
        )
    )


@dataclass
class Stop:
    """Input that must stop the run: its exit code and a fragment of its message."""

    name: str
    args: list[str]
    fragment: str
    sends: str | bytes | None = None  # a sends file's content (it gets `--sends`)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    most_requests: int = 0  # requests the run may make before it stops
    # The file and options are valid, so its pairs are remembered before the first pull (a run
    # that then stops keeps them registered, status `new`, with no data).
    registers: bool = False


GOOD = "campaign_id,send_id\n" + NEW_PAIR
STOPS = [
    Stop("sends file without a header", [], "lacks campaign_id, send_id", sends=NEW_PAIR),
    Stop("an id over 64 characters", [], "is 65 characters; Braze ids have at most 64",
         sends=GOOD + f"cmp,{'x' * 65}\n"),
    Stop("a non-ASCII id", [], "is not ASCII", sends=GOOD + "cmp,envío_2026\n"),
    Stop("an invalid sent_at", [], "sent_at '2026-13-45' is not an ISO-8601",
         sends="campaign_id,send_id,sent_at\n" + NEW_PAIR + "cmp,send,2026-13-45\n"),
    Stop("a spreadsheet saved as .csv (not text)", [], "is not UTF-8",
         sends=b"PK\x03\x04\x14\x00\x06\x00\xff\xfe"),
    Stop("--workers 0", ["--workers", "0"], "workers must be a number from 1 to 256", GOOD),
    Stop("--requests-per-hour -5", ["--requests-per-hour", "-5"],
         "requests_per_hour must be > 0", GOOD),
    Stop("--time-budget 0", ["--time-budget", "0"], "time_budget must be a number from 1", GOOD),
    Stop("max_attempts = 0 in the config", [], "max_attempts must be a number from 1 to 20",
         GOOD, env={"SOURCES__BRAZE__MAX_ATTEMPTS": "0"}),
    Stop("base_url where nothing listens", [], "cannot reach http://127.0.0.1:9", GOOD,
         env={"SOURCES__BRAZE__BASE_URL": "http://127.0.0.1:9"}, registers=True),
    Stop("base_url without https://", [], "'rest.iad-01.braze.com' is not an http(s) URL", GOOD,
         env={"SOURCES__BRAZE__BASE_URL": "rest.iad-01.braze.com"}),
    Stop("base_url with a wrong path (404)", [], "HTTP 404", GOOD,
         env={"SOURCES__BRAZE__BASE_URL": "{sandbox}/api/v1"}, most_requests=16, registers=True),
    Stop("401: a key of another Braze instance", [], "SOURCES__BRAZE__API_KEY", GOOD,
         env={"SOURCES__BRAZE__API_KEY": OTHER_INSTANCE}, most_requests=16, registers=True),
    Stop("403: a key without sends.data_series", [], "`sends.data_series` permission", GOOD,
         env={"SOURCES__BRAZE__API_KEY": NO_SENDS_PERMISSION}, most_requests=16, registers=True),
]  # fmt: skip


@pytest.mark.parametrize("stop", STOPS, ids=[s.name for s in STOPS])
def test_bad_input_stops_the_run_and_leaves_the_warehouse_as_it_was(
    stop: Stop, warehouse: Warehouse, sandbox: SandboxServer
):
    args = list(stop.args)
    if stop.registers:  # a pair of its own, new to the registry whatever ran before
        slug = "".join(c if c.isalnum() else "_" for c in stop.name)[:40]
        stop = dataclasses.replace(stop, sends=f"{stop.sends}cmp,stop_{slug}\n")
    if stop.sends is not None:
        sends = warehouse.path / "bad_sends.csv"
        if isinstance(stop.sends, bytes):
            sends.write_bytes(stop.sends)
        else:
            sends.write_text(stop.sends, encoding="utf-8")
        args += ["--sends", str(sends)]
    env = {k: v.format(sandbox=sandbox.url) for k, v in stop.env.items()}
    sandbox.stats.reset()
    done = warehouse.cli("run", *args, **env)
    requests = sandbox.stats.total
    message = " ".join(done.stderr.split())
    assert done.returncode == stop.code, done.stderr
    assert stop.fragment in message, done.stderr
    assert "Traceback" not in done.stderr
    assert requests <= stop.most_requests
    for secret in (OTHER_INSTANCE, NO_SENDS_PERMISSION):
        assert secret not in done.stdout + done.stderr
    after, before = warehouse.state(), warehouse.baseline
    if stop.registers:  # the valid new pair is remembered, nothing else changed
        data = ("send_variation_daily", "send_daily", "campaigns")
        assert {t: after["rows"][t] for t in data} == {t: before["rows"][t] for t in data}
        added = after["rows"]["sends"] - before["rows"]["sends"]
        assert added >= 1  # its own pair at least: every added pair is `new`, nothing else moved
        assert after["registry"]["counts"]["new"] == before["registry"]["counts"]["new"] + added
        assert after["registry"]["days_loaded"] == before["registry"]["days_loaded"]
        assert after["pending"] == []
        warehouse.baseline = after  # what the next case must leave unchanged
    else:
        assert after == before  # rows, registry, nothing pending
    error = next(line for line in done.stderr.splitlines() if "error:" in line)
    error = error.split("error: ", 1)[1].replace(f"{warehouse.path}/", "")
    OBSERVED.append(
        (
            stop.name,
            f"exit {stop.code}, nothing loaded",
            (
                f"exit {done.returncode} after {requests} request(s), "
                + (
                    "new pair registered, no data loaded"
                    if stop.registers
                    else "warehouse and registry unchanged"
                )
                + f": {error[:90]}"
            ),
        )
    )


class _HtmlPage(BaseHTTPRequestHandler):
    """A web page where the REST API should be (e.g. the dashboard's host as base_url)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><html><body>Sign in to Braze</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_base_url_that_answers_web_pages_fails_every_pair_and_loads_no_numbers(
    sandbox: SandboxServer, tmp_path: Path
):
    """Not a stop: each pair is recorded failed (retried next run); no number changes."""
    home = Warehouse(tmp_path, sandbox.url)
    sends = tmp_path / "sends.csv"
    write_csv(sends, [["campaign_id", "send_id"], *map(list, HOSTILE[:3])], bom=False)
    assert home.cli("run", "--sends", str(sends)).returncode == 0
    before = home.row_counts()
    sums = "SELECT sum(sent), sum(opens) FROM braze.send_variation_daily"
    stored = home.sql(sums)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = home.cli("run", SOURCES__BRAZE__BASE_URL=url, SOURCES__BRAZE__MAX_ATTEMPTS="2")
    finally:
        server.shutdown()
    assert done.returncode == 1, done.stderr
    assert "0 pulled, 3 failed" in done.stdout
    assert "200 whose body is not JSON: an HTML page" in done.stdout
    after = home.row_counts()
    for table in (VARIATION_TABLE, DAILY_TABLE, SENDS_TABLE):
        assert after[table] == before[table]
    assert home.sql(sums) == stored
    errors = home.sql("SELECT count(*) FROM braze.sends WHERE last_error LIKE '%an HTML page%'")
    assert errors == [(3,)]
    OBSERVED.append(
        (
            "base_url answering web pages (HTTP 200, HTML)",
            "exit 1, pairs failed, no number changed",
            (
                "exit 1: 3 of 3 pairs recorded failed ('an HTML page'), retried next run; "
                "stored numbers unchanged"
            ),
        )
    )

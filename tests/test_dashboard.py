"""The dashboard against a demo load: drawn by headless Chromium (Debian's `chromium`), with
screenshots under `artifacts/`, and its HTTP behaviour (offline JS, read-only, busy file)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import pytest
import requests

from braze_sends.dashboard import Dashboard
from braze_sends.demo import run_demo
from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts"
CHARTS = ("chart-daily", "chart-variations", "chart-windows")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """`make demo`'s load, in a folder of the test."""
    work = tmp_path_factory.mktemp("demo")
    run_demo(db=str(work / "braze_sends.duckdb"), pipelines_dir=str(work / "pipelines"))
    return work / "braze_sends.duckdb"


@pytest.fixture
def dashboard(demo_db):
    with Dashboard(demo_db, port=0) as running:
        yield running


def chromium(*args: str, url: str) -> subprocess.CompletedProcess:
    """Headless Chromium with the flags this machine needs, on a fresh profile."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it"
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                "--virtual-time-budget=20000",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def rendered(url: str) -> tuple[dict, str]:
    """What the page reports it drew, and the DOM after drawing."""
    done = chromium("--dump-dom", url=url)
    dom = done.stdout
    assert 'data-charts-rendered="' in dom, done.stderr[-2000:]
    report = re.search(r'<pre id="chart-report"[^>]*>(.*?)</pre>', dom, re.DOTALL).group(1)
    return json.loads(report), dom


def screenshot(url: str, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    done = chromium("--window-size=1300,2300", f"--screenshot={path}", url=url)
    assert path.exists() and path.stat().st_size > 50_000, done.stderr[-2000:]
    return path


def test_chromium_draws_every_chart_with_data_and_a_screenshot_is_saved(dashboard, demo_db):
    report, dom = rendered(dashboard.url)
    assert set(report) == set(CHARTS)
    for chart in CHARTS:
        assert report[chart]["traces"] >= 1 and report[chart]["points"] >= 3, (chart, report)
        assert report[chart]["svg"] >= 1, chart  # plotly drew SVG for it
    assert dom.count('class="main-svg"') >= 2 * len(CHARTS)
    assert "Control Group" in dom  # the default campaign is one with a control group
    assert 'class="trace bars"' in dom and 'class="js-line"' in dom
    shot = screenshot(dashboard.url, "dashboard.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_chosen_send_and_metric_are_drawn_too(dashboard, demo_db):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        campaign_id, send_id = con.execute(
            "SELECT campaign_id, send_id FROM braze.report_send_summary "
            "WHERE control_enrolled > 0 AND sent > 0 ORDER BY sent DESC LIMIT 1"
        ).fetchone()
        days = con.execute(
            "SELECT count(DISTINCT date), count(DISTINCT channel) FROM "
            "braze.report_send_channel_daily WHERE campaign_id = ? AND send_id = ?",
            [campaign_id, send_id],
        ).fetchone()
    query = urlencode({"campaign": campaign_id, "send": send_id, "metric": "conversion_rate"})
    url = f"{dashboard.url}?{query}"
    report, dom = rendered(url)
    assert report["chart-daily"]["traces"] == days[1]  # one line per channel
    assert report["chart-variations"]["points"] >= 2
    assert f"send {send_id}" in dom and "conversion rate" in dom
    screenshot(url, "dashboard_send.png")


def test_the_page_and_plotly_come_from_localhost_only(dashboard):
    page = requests.get(dashboard.url, timeout=30)
    assert page.status_code == 200 and "Rates by variation" in page.text
    assert re.findall(r'src="([^"]+)"', page.text) == ["/static/plotly.min.js"]
    assert "http://" not in page.text.replace(dashboard.url, "") and "https://" not in page.text
    script = requests.get(dashboard.url + "static/plotly.min.js", timeout=30)
    assert script.status_code == 200 and len(script.content) > 1_000_000
    assert b"plotly" in script.content[:2000].lower()
    odd = requests.get(dashboard.url, params={"campaign": "nope", "metric": "x;DROP"}, timeout=30)
    assert odd.status_code == 200 and "Daily sent by channel" in odd.text  # falls back
    assert requests.get(dashboard.url + "nope", timeout=30).status_code == 404


HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_it_reads_read_only_and_never_keeps_a_run_waiting(dashboard, demo_db):
    assert requests.get(dashboard.url, timeout=30).status_code == 200
    with duckdb.connect(str(demo_db)) as writer:  # a run can write right after a page view
        writer.execute("SELECT count(*) FROM braze.sends").fetchone()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(demo_db), "6"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        busy = requests.get(dashboard.url, timeout=30)
        assert busy.status_code == 503 and "writing the data right now" in busy.text
        assert "http-equiv=refresh" in busy.text and time.monotonic() - started < 5.5
    finally:
        holder.wait(timeout=30)
    assert requests.get(dashboard.url, timeout=30).status_code == 200


def test_without_a_load_it_says_what_to_run(tmp_path):
    with Dashboard(tmp_path / "missing.duckdb", port=0) as empty:
        page = requests.get(empty.url, timeout=30)
    assert page.status_code == 200 and "make demo" in page.text

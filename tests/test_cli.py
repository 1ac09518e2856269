"""The `braze-sends` command as cron runs it: exit codes, messages, summaries (subprocesses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from braze_sends.sandbox import ALL_PERMISSIONS, DEMO_API_KEY, Catalog, SandboxServer
from tests.conftest import run_cli

NO_PERMISSION_KEY = "key-without-sends-permission"


@pytest.fixture
def live(tmp_path):
    """A sandbox on real time (the CLI runs in another process, on the real clock)."""
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        5, start=now.date() - timedelta(days=10), days=10, sends=25, campaigns=5
    )
    keys = {DEMO_API_KEY: ALL_PERMISSIONS, NO_PERMISSION_KEY: {"campaigns.list"}}
    with SandboxServer(catalog, api_keys=keys) as server:
        sends = tmp_path / "sends.csv"
        catalog.write_sends_file(sends, as_of=now)
        yield server, sends


def env_for(server, key=DEMO_API_KEY, **extra):
    return {
        "SOURCES__BRAZE__API_KEY": key,
        "SOURCES__BRAZE__BASE_URL": server.url,
        "SOURCES__BRAZE__BACKOFF_SECONDS": "0.05",
        **extra,
    }


def test_run_loads_every_pair_prints_a_summary_and_exits_0(live, tmp_path):
    server, sends = live
    done = run_cli("run", "--sends", str(sends), env=env_for(server), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "25 pulled, 0 failed" in done.stdout
    assert "rows: send_variation_daily" in done.stdout
    with duckdb.connect(str(tmp_path / "braze_sends.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM braze.sends").fetchone() == (25,)


def test_a_failing_pair_exits_1_and_names_the_pair_and_the_fix(live, tmp_path):
    server, sends = live
    sends.write_text(sends.read_text() + "unknown-campaign,send_zz,\n")
    done = run_cli("run", "--sends", str(sends), env=env_for(server), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "25 pulled, 1 failed" in done.stdout
    assert "campaign_id='unknown-campaign' send_id='send_zz': HTTP 400" in done.stdout
    assert "check the campaign_id and send_id" in done.stdout


@pytest.mark.parametrize(
    "key, status, fix",
    [
        ("wrong-key-0123456789", "HTTP 401", "SOURCES__BRAZE__API_KEY"),
        (NO_PERMISSION_KEY, "HTTP 403", "sends.data_series"),
    ],
)
def test_a_bad_key_stops_the_run_at_once_with_exit_2_and_loads_nothing(
    live, tmp_path, key, status, fix
):
    server, sends = live
    done = run_cli("run", "--sends", str(sends), env=env_for(server, key), cwd=tmp_path)
    assert done.returncode == 2
    assert status in done.stderr and fix in done.stderr
    assert key not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert server.stats.total <= 8 + 1  # at most the first wave of workers, then it stopped


def test_a_missing_key_exits_2_and_says_where_to_put_it(live, tmp_path):
    server, sends = live
    done = run_cli(
        "run", "--sends", str(sends), env={"SOURCES__BRAZE__BASE_URL": server.url}, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "api_key" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--workers", "0"], "workers must be a number from 1 to 256"),
        (["--requests-per-hour", "0"], "requests_per_hour must be > 0"),
        (["--max-requests", "-1"], "max_requests"),
        (["--timezone", "Mars/Olympus"], "not an IANA time zone"),
        (["--sends", "missing.csv"], "does not exist"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message_before_any_request(live, tmp_path, args, fragment):
    server, _ = live
    done = run_cli("run", *args, env=env_for(server), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr
    assert server.stats.total == 0


def test_status_refuses_an_expired_alarm_past_the_archive_age(tmp_path):
    done = run_cli("status", "--expired-alarm-days", "45", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--expired-alarm-days must be a number from 0 to 30" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_base_url_exits_2_quickly(tmp_path):
    sends = tmp_path / "sends.csv"
    sends.write_text("campaign_id,send_id\n" + "".join(f"c{i},s{i}\n" for i in range(20)))
    env = {
        "SOURCES__BRAZE__API_KEY": DEMO_API_KEY,
        "SOURCES__BRAZE__BASE_URL": "http://127.0.0.1:9",  # discard port: nothing listens
        "SOURCES__BRAZE__BACKOFF_SECONDS": "0.01",
    }
    done = run_cli("run", "--sends", str(sends), env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in done.stderr and "check base_url" in done.stderr


def test_the_key_is_never_taken_on_the_command_line():
    done = run_cli("run", "--api-key", "x")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_demo_loads_the_sandbox_catalog_and_prints_the_report(tmp_path):
    done = run_cli("demo", "--db", str(tmp_path / "braze_sends.duckdb"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Top sends by messages sent:" in out and "send_variation_daily" in out
    with duckdb.connect(str(tmp_path / "braze_sends.duckdb"), read_only=True) as con:
        pairs = con.sql("SELECT count(*) FROM braze.sends").fetchone()[0]
        rows = con.sql("SELECT count(*) FROM braze.send_variation_daily").fetchone()[0]
    assert pairs > 250 and rows > 5000
    assert Path(tmp_path / "demo_sends.csv").read_text().startswith("campaign_id,send_id,sent_at")


def test_help_lists_the_commands_and_exit_codes():
    done = run_cli("--help")
    assert done.returncode == 0
    for word in ("run", "demo", "sandbox", "Exit codes"):
        assert word in done.stdout


def test_run_warns_about_a_send_lost_before_it_was_captured(live, tmp_path):
    server, sends = live
    campaign = next(iter(server.catalog.campaigns))
    sent_at = datetime.now(UTC) - timedelta(days=16)
    server.catalog.add_send(campaign_id=campaign, send_id="send_too_late", sent_at=sent_at)
    sends.write_text(sends.read_text() + f"{campaign},send_too_late,{sent_at.isoformat()}\n")
    done = run_cli("run", "--sends", str(sends), env=env_for(server), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"EXPIRED {campaign}/send_too_late" in done.stderr
    assert "expired 1" in done.stdout

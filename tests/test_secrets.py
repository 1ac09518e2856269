"""The API key appears nowhere a run writes: output, logs (DEBUG too), dlt's folder, the warehouse."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from braze_sends.sandbox import ALL_PERMISSIONS, Catalog, SandboxServer
from tests.conftest import REPO, run_cli

SECRET = "leakcheck-5d1e9b7a2c40f3e8a6b9"
WRONG = "leakcheck-wrong-0f9e8d7c6b5a4"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run with one pair failing, then one with a rejected key, both at DEBUG."""
    tmp_path = tmp_path_factory.mktemp("secrets")
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        9, start=now.date() - timedelta(days=5), days=5, sends=12, campaigns=3
    )
    outputs = []
    with SandboxServer(catalog, api_keys={SECRET: ALL_PERMISSIONS}) as server:
        sends = tmp_path / "sends.csv"
        catalog.write_sends_file(sends, as_of=now)
        sends.write_text(sends.read_text() + "no-such-campaign,s1,\n")
        base = {
            "SOURCES__BRAZE__BASE_URL": server.url,
            "RUNTIME__LOG_LEVEL": "DEBUG",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DLT_DATA_DIR": str(tmp_path / "dlt"),  # module scope: set here, not by `isolated`
        }
        for key in (SECRET, WRONG):
            done = run_cli(
                "run",
                "--sends",
                str(sends),
                "--log-level",
                "DEBUG",
                env={**base, "SOURCES__BRAZE__API_KEY": key},
                cwd=tmp_path,
            )
            outputs.append(done)
    return tmp_path, outputs


def test_the_key_is_in_no_output_or_log_even_at_debug(runs):
    _, outputs = runs
    assert outputs[0].returncode == 1 and outputs[1].returncode == 2  # the runs did happen
    assert "DEBUG" in outputs[0].stderr  # and logged at debug level
    for done in outputs:
        for text in (done.stdout, done.stderr):
            assert SECRET not in text and WRONG not in text


def test_the_key_is_in_no_file_the_runs_wrote(runs):
    tmp_path, _ = runs
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".duckdb") for p in files)
    assert any("trace" in p.name for p in files)  # dlt's trace of the run is among them
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data and WRONG.encode() not in data, path


def test_the_key_is_in_no_column_of_any_table_nor_in_the_stored_state(runs):
    tmp_path, _ = runs
    with duckdb.connect(str(tmp_path / "braze_sends.duckdb"), read_only=True) as con:
        text_columns = con.sql(
            "SELECT table_schema, table_name, column_name FROM "
            "information_schema.columns WHERE data_type = 'VARCHAR'"
        ).fetchall()
        assert len(text_columns) > 10
        for schema, table, column in text_columns:
            hits = con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" LIKE ?',
                [f"%{SECRET[:16]}%"],
            ).fetchone()[0]
            assert hits == 0, (table, column)
        states = con.sql("SELECT state FROM braze._dlt_pipeline_state").fetchall()
    assert states
    for (blob,) in states:  # dlt stores state compressed: look inside
        decoded = zlib.decompress(base64.b64decode(blob)).decode()
        assert SECRET not in decoded and "last_run" in decoded


def test_secrets_toml_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dlt/secrets.toml"], cwd=REPO)
    assert ignored.returncode == 0
    assert (REPO / ".dlt" / "secrets.toml.example").exists()


def test_the_key_is_masked_in_logs_even_if_code_logs_it(tmp_path):
    """Defence in depth: the CLI's log filter masks the configured key in any record."""
    code = (
        "import logging, sys; from braze_sends import logs; "
        f"logs.setup('DEBUG', 'json', secrets=['{SECRET}']); "
        f"logging.getLogger('braze_sends.x').warning('key is %s', '{SECRET}')"
    )
    done = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True)
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert entry["message"] == "key is ***" and entry["level"] == "warning"
    assert Path(tmp_path).exists()

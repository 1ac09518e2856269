"""Every SQL block of the README over the `braze` dataset runs against a demo load and returns
rows, so none can rot. (Blocks about other stores, e.g. a Delta lake through DuckDB's `delta`
extension, are left out: the README says they are not run by the tests.)"""

from __future__ import annotations

import re

import duckdb
import pytest

from braze_sends.demo import run_demo
from tests.conftest import REPO

SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)


NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def readme_queries() -> list[str]:
    """The statements of every ```sql block whose statements all read the `braze` dataset."""
    text = (REPO / "README.md").read_text()
    statements = []
    for block in SQL_BLOCK.findall(text):
        block_statements = [s.strip() for s in block.split(";") if s.strip()]
        if all("braze." in s for s in block_statements):
            statements += block_statements
    return statements


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    work = tmp_path_factory.mktemp("readme")
    db = work / "braze_sends.duckdb"
    run_demo(db=str(db), pipelines_dir=str(work / "pipelines"))
    return db


def test_the_readme_has_example_queries_of_the_views():
    queries = readme_queries()
    assert len(queries) >= 8
    assert any("report_send_summary" in q for q in queries)
    assert any("report_send_variation_summary" in q for q in queries)


@pytest.mark.parametrize("query", readme_queries(), ids=lambda q: q.splitlines()[0][3:60])
def test_each_readme_query_runs_and_returns_rows(demo_db, query):
    with duckdb.connect(str(demo_db), read_only=True, config=NO_DOWNLOADS) as con:
        campaign_id, send_id = con.execute(
            "SELECT campaign_id, send_id FROM braze.report_send_summary "
            "WHERE control_enrolled > 0 AND sent > 0 ORDER BY sent DESC LIMIT 1"
        ).fetchone()
        params = [campaign_id, send_id][: query.count("?")]
        rows = con.execute(query, params).fetchall()
    assert rows, query

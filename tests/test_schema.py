"""The data contract as schema files: pinned types, the contract, and the committed `schemas/`."""

from __future__ import annotations

import shutil
from datetime import timedelta

from braze_sends import SendPair, columns, schema
from braze_sends.settings import DAILY_TABLE, SENDS_TABLE, VARIATION_TABLE
from tests.conftest import NOW

IMPORT_FILE = f"import/{schema.SCHEMA_FILE}"
EXPORT_FILE = f"export/{schema.SCHEMA_FILE}"
STALE = "is stale: run `make schema` and commit schemas/ (review the diff first):\n"


def test_the_committed_import_schema_is_the_one_the_code_makes():
    diffs = schema.differences(schema.SCHEMAS_DIR, {IMPORT_FILE: schema.import_yaml()})
    assert not diffs, IMPORT_FILE + STALE + "\n".join(diffs)


def test_the_exported_schema_has_not_drifted_from_the_committed_one():
    """A change of a table, a column, a type or a hint shows here until `make schema` is run."""
    diffs = schema.differences(schema.SCHEMAS_DIR, {EXPORT_FILE: schema.export_yaml()})
    assert not diffs, EXPORT_FILE + STALE + "\n".join(diffs)


def test_a_stale_committed_schema_is_caught_and_make_schema_rewrites_it(tmp_path, capsys):
    shutil.copytree(schema.SCHEMAS_DIR, tmp_path / "schemas")
    exported = tmp_path / "schemas" / EXPORT_FILE
    text = exported.read_text()
    before = "      revenue:\n        data_type: double\n"
    assert before in text
    exported.write_text(text.replace(before, "      revenue:\n        data_type: bigint\n", 1))

    assert schema.main(["--dir", str(tmp_path / "schemas"), "--check"]) == 1
    report = capsys.readouterr().out
    assert "-        data_type: bigint" in report and "+        data_type: double" in report
    assert "run `make schema`" in report

    assert schema.main(["--dir", str(tmp_path / "schemas")]) == 0
    assert schema.main(["--dir", str(tmp_path / "schemas"), "--check"]) == 0
    assert before in exported.read_text()  # written back as the code makes it


def test_the_import_schema_pins_the_contracts_types():
    tables = schema.import_schema().tables
    variation, daily, sends = tables[VARIATION_TABLE], tables[DAILY_TABLE], tables[SENDS_TABLE]
    assert variation["columns"]["date"]["data_type"] == "date"
    pulled_at = {k: v for k, v in variation["columns"]["pulled_at"].items() if k != "name"}
    assert pulled_at == {"data_type": "timestamp", "timezone": True, "nullable": False}
    for name in ("sent", "unique_opens", "enrolled", "machine_open", "conversions2_by_send_time"):
        assert variation["columns"][name]["data_type"] == "bigint", name
    assert variation["columns"]["revenue"]["data_type"] == "double"
    assert daily["columns"]["revenue"]["data_type"] == "double"
    assert daily["columns"]["unique_recipients"]["data_type"] == "bigint"
    assert [c for c in variation["columns"] if variation["columns"][c].get("primary_key")] == list(
        columns.VARIATION_KEY
    )
    assert sends["columns"]["sent_date"]["data_type"] == "date"
    assert sends["columns"]["window_closes_at"]["timezone"] is True
    assert all(t["write_disposition"] == "merge" for t in (variation, daily, sends))
    assert schema.import_schema().settings["schema_contract"] == schema.CONTRACT


def test_documented_metrics_have_their_column_and_type_from_the_first_load(loader, catalog):
    campaign = next(iter(catalog.campaigns))
    sent_at = NOW - timedelta(days=1)
    catalog.add_send(
        campaign_id=campaign,
        send_id="send_email_only",
        sent_at=sent_at,
        channels={"email": None},
        control_group=False,
    )
    pipeline = loader.pipeline()
    assert loader.run(pipeline, pairs=[SendPair(campaign, "send_email_only", sent_at)]).failed == 0
    described = dict(
        loader.sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'braze' AND table_name = 'send_variation_daily'"
        )
    )
    # SMS, content card and in-app message counts: no row has them yet, their type is set
    assert described["sent_to_carrier"] == described["total_impressions"] == "BIGINT"
    assert described["first_button_clicks"] == "BIGINT" and described["revenue"] == "DOUBLE"
    assert loader.sql("SELECT count(sent_to_carrier) FROM braze.send_variation_daily") == [(0,)]
    assert loader.sql("SELECT count(*) FROM braze.send_variation_daily")[0][0] > 0
    assert pipeline.default_schema.settings["schema_contract"] == schema.CONTRACT


def test_a_column_whose_type_would_change_fails_its_pairs_and_changes_nothing(
    loader, catalog, monkeypatch
):
    """A retype never reaches the warehouse: the pairs holding the metric fail with the column
    named, their stored rows stay, the column keeps its type (dlt's contract stays a backstop)."""
    campaign = next(iter(catalog.campaigns))
    sent_at = NOW - timedelta(days=2)
    catalog.add_send(
        campaign_id=campaign,
        send_id="send_new_metric",
        sent_at=sent_at,
        extra_metrics={"brand_new_count": "int"},
    )
    pair = SendPair(campaign, "send_new_metric", sent_at)
    pipeline = loader.pipeline()
    assert loader.run(pipeline, pairs=[pair]).failed == 0  # a new key: a new DOUBLE column
    before = loader.sql("SELECT count(*), sum(brand_new_count) FROM braze.send_variation_daily")
    loads = loader.sql("SELECT count(*) FROM braze._dlt_loads")

    # The code now calls it a count (BIGINT): the stored DOUBLE column would change type.
    monkeypatch.setattr(columns, "COUNT_METRICS", columns.COUNT_METRICS | {"brand_new_count"})
    result = loader.run(pipeline)
    assert result.failed == 1
    (error,) = loader.sql("SELECT last_error FROM braze.sends WHERE send_id = 'send_new_metric'")[0]
    assert "send_variation_daily.brand_new_count is double in the warehouse" in error
    assert not pipeline.has_pending_data
    assert (
        loader.sql("SELECT count(*), sum(brand_new_count) FROM braze.send_variation_daily")
        == before
    )
    described = loader.sql(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'braze' "
        "AND table_name = 'send_variation_daily' AND column_name = 'brand_new_count'"
    )
    assert described == [("DOUBLE",)]
    loads = loader.sql("SELECT count(*) FROM braze._dlt_loads")

    monkeypatch.undo()  # the type the warehouse has: the next run loads again
    assert loader.run(pipeline).failed == 0
    assert loader.sql("SELECT count(*) FROM braze._dlt_loads")[0][0] == loads[0][0] + 1

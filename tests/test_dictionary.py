"""The data dictionary is current (regenerated from a sandbox load) and documents everything."""

from __future__ import annotations

import re

from braze_sends import dictionary
from braze_sends.views import VIEWS
from tests.conftest import REPO

PATH = REPO / "docs" / "data_dictionary.md"


def test_the_committed_dictionary_is_current_and_every_column_has_a_meaning():
    generated = dictionary.generate()
    assert dictionary.UNDOCUMENTED not in generated
    assert PATH.read_text() == generated, "docs/data_dictionary.md is stale: run `make dictionary`"


def test_it_lists_every_table_view_and_column():
    text = PATH.read_text()
    sections = re.findall(r"^## (\S+)$", text, re.MULTILINE)
    assert {"send_variation_daily", "send_daily", "sends", "campaigns", "_dlt_loads"} <= set(
        sections
    )
    assert {v.name for v in VIEWS} <= set(sections)
    for view in ("report_send_summary", "report_send_channel_daily"):
        body = text.split(f"## {view}\n", 1)[1].split("\n## ", 1)[0]
        for column in ("campaign_name", "delivery_rate", "open_rate", "click_rate"):
            assert f"| `{column}` |" in body, (view, column)
    campaigns = text.split("## campaigns\n", 1)[1].split("\n## ", 1)[0]
    assert "| `conversions_label` |" in campaigns and "| `campaign_id` **key** |" in campaigns


def test_meanings_fall_back_to_a_visible_mark():
    assert dictionary.meaning("send_variation_daily", "sent") == "messages sent"
    assert dictionary.meaning("send_variation_daily", "brand_new_metric") == (
        dictionary.UNDOCUMENTED
    )

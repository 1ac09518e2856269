"""Flattening: one response into variation rows and day rows (pure; example and property tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from braze_sends.errors import UnexpectedResponseError
from braze_sends.flatten import day_activity, flatten_series

PULLED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def flat(data):
    return flatten_series("camp", "send", data, pulled_at=PULLED)


def day(time="2026-11-20", messages=None, **totals):
    return {"time": time, "messages": messages or {}, **totals}


def test_one_row_per_channel_and_variation_with_identity_columns():
    result = flat(
        [
            day(
                messages={
                    "email": [
                        {"variation_name": "A", "variation_api_id": "va", "sent": 10, "opens": 3},
                        {"variation_name": "B", "variation_api_id": "vb", "sent": 5, "opens": 1},
                    ],
                    "ios_push": [{"variation_name": "P", "sent": 7, "direct_opens": 2}],
                },
                conversions=4,
                unique_recipients=20,
                revenue=12.5,
            )
        ]
    )
    rows = {(r["channel"], r["variation_name"]): r for r in result.variation_rows}
    assert set(rows) == {("email", "A"), ("email", "B"), ("ios_push", "P")}
    assert rows[("email", "A")] == {
        "campaign_id": "camp",
        "send_id": "send",
        "date": date(2026, 11, 20),
        "channel": "email",
        "variation_name": "A",
        "variation_api_id": "va",
        "sent": 10,
        "opens": 3,
        "pulled_at": PULLED,
    }
    assert rows[("ios_push", "P")]["variation_api_id"] is None
    assert result.daily_rows == [
        {
            "campaign_id": "camp",
            "send_id": "send",
            "date": date(2026, 11, 20),
            "conversions": 4,
            "unique_recipients": 20,
            "revenue": 12.5,
            "pulled_at": PULLED,
        }
    ]


def test_empty_channel_arrays_and_days_without_messages_yield_no_variation_rows():
    result = flat([day(messages={"sms": [], "email": None}), {"time": "2026-11-21"}])
    assert result.variation_rows == []
    assert [r["date"] for r in result.daily_rows] == [date(2026, 11, 20), date(2026, 11, 21)]


def test_unknown_channels_and_metric_keys_are_kept_as_columns():
    result = flat(
        [
            day(
                messages={
                    "rcs": [{"variation_name": "R", "sent": 3, "read": 1, "rich_card_taps": 2}],
                    "ios_push": [{"variation_name": "P", "carousel_slide_1_Summer Sale_click": 4}],
                    "email": [{"variation_name": "E", "machine_open": 6, "new_rate": 0.25}],
                },
                conversions_new=7,
            )
        ]
    )
    rows = {r["channel"]: r for r in result.variation_rows}
    assert rows["rcs"]["rich_card_taps"] == 2.0 and result.kinds["rich_card_taps"] == "number"
    assert rows["ios_push"]["carousel_slide_1_Summer Sale_click"] == 4
    assert result.kinds["carousel_slide_1_Summer Sale_click"] == "count"
    assert rows["email"]["machine_open"] == 6 and result.kinds["machine_open"] == "count"
    assert rows["email"]["new_rate"] == 0.25
    assert result.daily_rows[0]["conversions_new"] == 7.0


def test_revenue_is_always_a_float_whether_braze_sends_0_or_12_5():
    result = flat(
        [
            day("2026-11-20", {"email": [{"variation_name": "A", "revenue": 0}]}, revenue=0),
            day("2026-11-21", {"email": [{"variation_name": "A", "revenue": 12.5}]}, revenue=12.5),
        ]
    )
    values = [r["revenue"] for r in result.variation_rows + result.daily_rows]
    assert all(type(v) is float for v in values)
    assert result.kinds["revenue"] == "amount"


def test_counts_stay_integers_even_when_sent_as_whole_floats():
    result = flat([day(messages={"email": [{"variation_name": "A", "sent": 3.0}]})])
    assert result.variation_rows[0]["sent"] == 3 and type(result.variation_rows[0]["sent"]) is int


def test_control_group_rows_are_kept_without_send_metrics():
    result = flat(
        [
            day(
                messages={
                    "email": [
                        {"variation_name": "A", "sent": 10},
                        {
                            "variation_name": "Control Group",
                            "enrolled": 4,
                            "conversions": 1,
                            "revenue": 0,
                        },
                    ]
                }
            )
        ]
    )
    control = next(r for r in result.variation_rows if r["variation_name"] == "Control Group")
    assert control["enrolled"] == 4 and "sent" not in control


def test_variation_name_falls_back_to_api_id_then_position_and_duplicates_stay_distinct():
    result = flat(
        [
            day(
                messages={
                    "email": [
                        {"variation_api_id": "v-1", "sent": 1},
                        {"sent": 2},
                        {"variation_name": "Same", "variation_api_id": "x", "sent": 3},
                        {"variation_name": "Same", "variation_api_id": "y", "sent": 4},
                    ]
                }
            )
        ]
    )
    names = [r["variation_name"] for r in result.variation_rows]
    assert names == ["v-1", "variation_1", "Same", "Same [y]"]


@pytest.mark.parametrize(
    "data, fragment",
    [
        ([{"messages": {}}], "no `time`"),
        (["not a day"], "not an object"),
        ([{"time": "20/11/2026"}], "not a YYYY-MM-DD"),
        ([{"time": "2026-11-20", "messages": []}], "`messages` is not an object"),
        ([{"time": "2026-11-20", "messages": {"email": "x"}}], "`email` is not a list"),
        ([{"time": "2026-11-20", "messages": {"email": [{"sent": 2.5}]}}], "whole number"),
        ([{"time": "2026-11-20", "messages": {"email": [{"sent": "ten"}]}}], "expected a number"),
    ],
)
def test_unexpected_shapes_raise_an_error_naming_the_pair(data, fragment):
    with pytest.raises(UnexpectedResponseError) as caught:
        flat(data)
    assert fragment in str(caught.value)
    assert "campaign_id='camp' send_id='send'" in str(caught.value)


def test_a_metric_whose_json_type_changes_between_days_keeps_one_numeric_type():
    result = flat(
        [
            day("2026-11-20", {"email": [{"variation_name": "A", "new_metric": 3}]}),
            day("2026-11-21", {"email": [{"variation_name": "A", "new_metric": 2.5}]}),
        ]
    )
    assert [r["new_metric"] for r in result.variation_rows] == [3.0, 2.5]
    assert result.kinds["new_metric"] == "number"


def test_day_activity_sums_numbers_per_day():
    result = flat(
        [
            day("2026-11-20", {"email": [{"variation_name": "A", "sent": 3}]}, revenue=1.5),
            day("2026-11-21", {"email": [{"variation_name": "A", "sent": 0}]}, revenue=0),
        ]
    )
    assert day_activity(result) == {date(2026, 11, 20): 4.5, date(2026, 11, 21): 0.0}


# -- properties over generated responses ------------------------------------------------------

metric_names = st.sampled_from(
    [
        "sent",
        "delivered",
        "opens",
        "unique_opens",
        "clicks",
        "revenue",
        "conversions",
        "enrolled",
        "machine_open",
        "brand_new_metric",
    ]
)
metric_values = st.one_of(
    st.integers(0, 10**9), st.floats(0, 1e9, allow_nan=False).map(lambda f: float(int(f)))
)
variation = st.fixed_dictionaries(
    {
        "variation_name": st.text("abcXYZ -_", min_size=1, max_size=8),
        "variation_api_id": st.text("0123456789abcdef", min_size=4, max_size=8),
    },
).flatmap(
    lambda ident: st.dictionaries(metric_names, metric_values, max_size=6).map(
        lambda metrics: {**ident, **metrics}
    )
)
channels = st.dictionaries(
    st.sampled_from(["email", "ios_push", "sms", "webhook", "rcs", "content_cards"]),
    st.lists(variation, max_size=3),
    max_size=4,
)


@st.composite
def responses(draw):
    start = date(2026, 11, 1)
    length = draw(st.integers(1, 5))
    return [
        {
            "time": (start + timedelta(days=i)).isoformat(),
            "messages": draw(channels),
            **draw(
                st.dictionaries(
                    st.sampled_from(["conversions", "revenue", "unique_recipients"]), metric_values
                )
            ),
        }
        for i in range(length)
    ]


@settings(max_examples=100, deadline=None)
@given(responses())
def test_property_every_variation_object_becomes_exactly_one_row_with_unique_keys(data):
    result = flat(data)
    expected = sum(len(v) for d in data for v in d["messages"].values())
    assert len(result.variation_rows) == expected
    keys = [(r["date"], r["channel"], r["variation_name"]) for r in result.variation_rows]
    assert len(keys) == len(set(keys))
    assert len(result.daily_rows) == len(data)


@settings(max_examples=100, deadline=None)
@given(responses())
def test_property_metric_sums_are_preserved_per_channel(data):
    result = flat(data)
    for channel in {c for d in data for c in d["messages"]}:
        for metric in ("sent", "revenue", "brand_new_metric"):
            served = sum(v.get(metric, 0) for d in data for v in d["messages"].get(channel, []))
            stored = sum(
                r.get(metric) or 0 for r in result.variation_rows if r["channel"] == channel
            )
            assert stored == pytest.approx(served)


@settings(max_examples=100, deadline=None)
@given(responses())
def test_property_column_types_depend_on_the_name_not_the_value(data):
    result = flat(data)
    for rows in (result.variation_rows, result.daily_rows):
        for row in rows:
            for name in ("sent", "conversions", "enrolled"):
                assert name not in row or type(row[name]) is int
            for name in ("revenue", "brand_new_metric"):
                assert name not in row or type(row[name]) is float

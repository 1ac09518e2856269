"""The fast path equals the reference: columnar batches give the tables flatten_series gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from braze_sends.columnar import PAIR, Response, flatten_batch
from braze_sends.columns import DAILY_KEY, VARIATION_KEY
from braze_sends.flatten import day_activity, flatten_series
from braze_sends.sandbox import Catalog
from braze_sends.tables import to_arrow
from tests.test_flatten import responses as response_data

PULLED = datetime(2026, 11, 20, 12, tzinfo=UTC)


def reference(batch: list[Response]):
    """The reference path: rows per pair, then one Arrow table per table."""
    flats = [flatten_series(r.campaign_id, r.send_id, r.data, pulled_at=r.pulled_at) for r in batch]
    kinds = {}
    for flat in flats:
        kinds.update(flat.kinds)
    variation = [row for flat in flats for row in flat.variation_rows]
    daily = [row for flat in flats for row in flat.daily_rows]
    activity = {i: day_activity(flat) for i, flat in enumerate(flats)}
    return (
        to_arrow(variation, kinds, VARIATION_KEY) if variation else None,
        to_arrow(daily, kinds, DAILY_KEY),
        activity,
    )


def canonical(table: pa.Table | None):
    """Rows as sorted tuples over sorted column names, and the column types."""
    if table is None or table.num_rows == 0:
        return [], {}
    table = table.drop_columns([PAIR]) if PAIR in table.column_names else table
    names = sorted(table.column_names)
    types = {n: str(table.schema.field(n).type) for n in names}
    rows = sorted(
        (tuple((n, row[n]) for n in names) for row in table.select(names).to_pylist()), key=repr
    )
    return rows, types


def assert_same(batch: list[Response]):
    fast = flatten_batch(batch)
    ref_variation, ref_daily, ref_activity = reference(batch)
    assert canonical(fast.variation) == canonical(ref_variation)
    assert canonical(fast.daily) == canonical(ref_daily)
    got = fast.activity()
    for index, days in ref_activity.items():
        assert got.get(index, {}) == pytest.approx(days)


def test_the_sandbox_catalog_flattens_identically_both_ways():
    now = datetime(2026, 11, 20, 15, tzinfo=UTC)
    catalog = Catalog.generate(
        2, start=now.date() - timedelta(days=13), days=13, sends=120, campaigns=10
    )
    batch = [
        Response(c, s, catalog.series(c, s, length=14, ending_at_date=now.date(), as_of=now), now)
        for c, s, _ in catalog.pairs()
    ]
    assert_same(batch)
    assert flatten_batch(batch).variation.num_rows > 3000


@settings(max_examples=150, deadline=None)
@given(st.lists(response_data(), min_size=1, max_size=4))
def test_property_fast_path_equals_reference_or_refuses(datas):
    batch = [
        Response(f"c{i}", f"s{i}", data, PULLED + timedelta(minutes=i))
        for i, data in enumerate(datas)
    ]
    try:
        flatten_batch(batch)
    except (ValueError, TypeError, pa.ArrowException):
        return  # refused: the caller falls back to the reference, pair by pair
    assert_same(batch)


def test_withheld_days_are_dropped_only_for_their_pair():
    data = [
        {
            "time": "2026-11-18",
            "messages": {"email": [{"variation_name": "A", "sent": 3}]},
            "conversions": 1,
        },
        {
            "time": "2026-11-19",
            "messages": {"email": [{"variation_name": "A", "sent": 2}]},
            "conversions": 0,
        },
    ]
    tables = flatten_batch([Response("c", "a", data, PULLED), Response("c", "b", data, PULLED)])
    kept = tables.keep({0: {date(2026, 11, 18)}})
    assert kept.variation.num_rows == 3 and kept.daily.num_rows == 3
    remaining = set(zip(kept.daily[PAIR].to_pylist(), kept.daily["date"].to_pylist(), strict=True))
    assert (0, date(2026, 11, 18)) not in remaining and (1, date(2026, 11, 18)) in remaining


@pytest.mark.parametrize(
    "data",
    [
        [{"time": "2026-11-18", "messages": {"email": [{"variation_name": "A", "sent": "ten"}]}}],
        [{"time": "2026-11-18", "messages": {"email": [{"variation_name": "A", "sent": 2.5}]}}],
        [{"messages": {}}],
        [{"time": "2026-11-18", "messages": {"email": "x"}}],
        [
            {
                "time": "2026-11-18",
                "messages": {"email": [{"variation_name": "A"}, {"variation_name": "A"}]},
            }
        ],
    ],
)
def test_what_the_fast_path_cannot_hold_it_refuses(data):
    with pytest.raises((ValueError, TypeError, pa.ArrowException)):
        flatten_batch([Response("c", "s", data, PULLED)])

"""Vectorised flattening: a batch of responses straight into Arrow tables (the fast path).

Same contract as `flatten.flatten_series`, which stays the reference (a property test checks both
give identical tables). Where the reference builds one dict per row and coerces value by value,
this builds one Arrow table per channel from the variation objects as Braze sent them, with an
explicit schema from `columns` (so a `0` and a `12.5` land in one DOUBLE column), and computes the
identity columns and each day's activity with Arrow kernels.

`flatten_batch` raises on anything the contract can't hold (a day without `time`, text where a
count belongs...). The caller then falls back to the reference pair by pair, so one bad pair fails
alone with the reference's clear message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from braze_sends.columns import (
    DAILY_KEY,
    IDENTITY_TYPES,
    PULLED_AT,
    VARIATION_KEY,
    MetricKind,
    arrow_type,
    documented_kind,
)
from braze_sends.flatten import FlatSeries
from braze_sends.tables import to_arrow

PAIR = "_pair"  # row -> index of its response in the batch (dropped before loading)
_NUMERIC: frozenset[str] = frozenset({"count", "amount", "number"})
_VARIATION_IDENTITY = ("variation_name", "variation_api_id")
_RESERVED = frozenset({"campaign_id", "send_id", "date", "channel", PULLED_AT, PAIR})


@dataclass(frozen=True)
class Response:
    """One pair's successful response."""

    campaign_id: str
    send_id: str
    data: list[Any]
    pulled_at: datetime


@dataclass
class BatchTables:
    """The batch's rows as Arrow tables, each row tagged with its response's index (`_pair`)."""

    variation: pa.Table
    daily: pa.Table
    kinds: dict[str, MetricKind]

    def activity(self) -> dict[int, dict[date, float]]:
        """Per response, the sum of every numeric metric per day (as `flatten.day_activity`)."""
        parts = []
        for table in (self.daily, self.variation):
            total = pa.nulls(table.num_rows, pa.float64()).fill_null(0.0)
            for name in table.column_names:
                if self.kinds.get(name) in _NUMERIC:
                    column = pc.fill_null(pc.abs(table[name].cast(pa.float64())), 0.0)
                    total = pc.add(total, column)
            parts.append(pa.table({PAIR: table[PAIR], "date": table["date"], "total": total}))
        grouped = pa.concat_tables(parts).group_by([PAIR, "date"]).aggregate([("total", "sum")])
        out: dict[int, dict[date, float]] = defaultdict(dict)
        for pair, day, value in zip(
            grouped[PAIR].to_pylist(),
            grouped["date"].to_pylist(),
            grouped["total_sum"].to_pylist(),
            strict=True,
        ):
            out[pair][day] = value
        return out

    def pairs_with_values(self, table: str, column: str) -> set[int]:
        """The responses with a non-null value in `column` of `table` ("variation"/"daily")."""
        data = self.variation if table == "variation" else self.daily
        if column not in data.column_names:
            return set()
        return set(data.filter(pc.is_valid(data[column]))[PAIR].to_pylist())

    def without_pairs(self, pairs: set[int]) -> BatchTables:
        """The batch without any row of the given responses."""
        if not pairs:
            return self

        def drop(table: pa.Table) -> pa.Table:
            return table.filter(
                pc.invert(pc.is_in(table[PAIR], pa.array(sorted(pairs), pa.int32())))
            )

        return BatchTables(drop(self.variation), drop(self.daily), self.kinds)

    def keep(self, withheld: dict[int, set[date]]) -> BatchTables:
        """The batch without the given (response, day) rows (a retention signal's days)."""
        if not any(withheld.values()):
            return self

        def drop(table: pa.Table) -> pa.Table:
            pairs, days = table[PAIR].to_pylist(), table["date"].to_pylist()
            mask = [day not in withheld.get(p, ()) for p, day in zip(pairs, days, strict=True)]
            return table.filter(pa.array(mask, pa.bool_()))

        return BatchTables(drop(self.variation), drop(self.daily), self.kinds)


def from_flat(flat: FlatSeries, index: int) -> BatchTables:
    """One pair's reference rows (`flatten.flatten_series`) as a batch of its own."""

    def table(rows: list[dict[str, Any]], key: tuple[str, ...]) -> pa.Table:
        base = to_arrow(rows, flat.kinds, key) if rows else _empty_variation().drop_columns([PAIR])
        return base.append_column(PAIR, pa.array([index] * base.num_rows, pa.int32()))

    return BatchTables(
        table(flat.variation_rows, VARIATION_KEY),
        table(flat.daily_rows, DAILY_KEY),
        dict(flat.kinds),
    )


def flatten_batch(responses: Sequence[Response]) -> BatchTables:
    """Flatten a batch of responses into `send_variation_daily` and `send_daily` tables.

    Raises:
        ValueError, TypeError, pyarrow.ArrowException: the batch has something the fast path
            does not take; use the reference `flatten.flatten_series` pair by pair.
    """
    days: list[date] = []  # one entry per (response, day), in order
    day_pair: list[int] = []
    day_objects: list[dict[str, Any]] = []
    groups: dict[str, _ChannelRows] = {}
    parsed: dict[str, date] = {}  # a batch's days share a few `time` strings
    for index, response in enumerate(responses):
        seen_days: set[date] = set()
        for day in response.data:
            if type(day) is not dict:
                raise TypeError("a day is not an object")
            time = day.get("time")
            if type(time) is not str:
                raise ValueError("a day without a `time` date")
            day_date = parsed.get(time)
            if day_date is None:
                day_date = parsed[time] = date.fromisoformat(time[:10])
            if day_date in seen_days:
                raise ValueError("a repeated day")  # the reference keeps the last one
            seen_days.add(day_date)
            day_row = len(days)
            days.append(day_date)
            day_pair.append(index)
            metrics = dict(day)  # the day's own metrics: all but its structure
            del metrics["time"]
            messages = metrics.pop("messages", None)
            day_objects.append(metrics)
            if messages is None:
                continue
            if type(messages) is not dict:
                raise TypeError("`messages` is not an object")
            for channel, variations in messages.items():
                if variations is None:
                    continue
                if type(variations) is not list:
                    raise TypeError(f"`{channel}` is not a list")
                group = groups.get(channel)
                if group is None:
                    group = groups[channel] = _ChannelRows()
                group.list_days.append(day_row)
                group.list_lengths.append(len(variations))
                group.objects += variations  # Arrow refuses anything that is not an object

    kinds: dict[str, MetricKind] = {}
    day_index = pa.array(range(len(days)), pa.int64())
    daily_metrics = _metrics_table(day_objects, kinds)
    daily = _with_identity(daily_metrics, day_index, responses, days, day_pair)
    parts = []
    for channel, group in groups.items():
        inferred = pa.Table.from_struct_array(pa.array(group.objects))
        rows, positions = group.day_rows_and_positions()
        names, api_ids = group.identity(inferred, rows, positions)
        metrics = _typed(inferred, kinds, _VARIATION_IDENTITY)
        table = _with_identity(
            metrics, rows, responses, days, day_pair, channel=channel, names=names, api_ids=api_ids
        )
        parts.append(table)
    variation = pa.concat_tables(parts, promote_options="default") if parts else _empty_variation()
    return BatchTables(variation, daily, kinds)


class _ChannelRows:
    """One channel's variation objects of a batch, and the day row and length of each list."""

    __slots__ = ("list_days", "list_lengths", "objects")

    def __init__(self) -> None:
        self.list_days: list[int] = []
        self.list_lengths: list[int] = []
        self.objects: list[Any] = []

    def day_rows_and_positions(self) -> tuple[pa.Array, pa.Array]:
        """Per object, its day row and its position in its list."""
        offsets = pc.cumulative_sum(pa.array([0, *self.list_lengths], pa.int32()))
        lists = pa.ListArray.from_arrays(offsets, pa.nulls(len(self.objects), pa.int8()))
        parent = pc.list_parent_indices(lists)  # per object, the index of its list
        starts = pc.take(offsets, parent).cast(pa.int64())
        positions = pc.subtract(pa.array(range(len(self.objects)), pa.int64()), starts)
        return pc.take(pa.array(self.list_days, pa.int64()), parent), positions

    def identity(
        self, inferred: pa.Table, day_rows: pa.Array, positions: pa.Array
    ) -> tuple[pa.Array, pa.Array]:
        """`variation_name` (falling back to `variation_api_id`, then `variation_<position>`)
        and `variation_api_id`, as the reference builds them."""
        n = len(self.objects)
        name = _text_column(inferred, "variation_name", n)
        api_id = _text_column(inferred, "variation_api_id", n)
        position = pc.binary_join_element_wise("variation_", positions.cast(pa.string()), "")
        name = pc.coalesce(_blank_to_null(name), _blank_to_null(api_id), position)
        keys = pa.table({"day": day_rows, "name": name})
        if keys.group_by(["day", "name"]).aggregate([]).num_rows != n:
            raise ValueError("two variations of a channel share a name")  # reference renames
        return name, api_id


def _text_column(table: pa.Table, name: str, length: int) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(length, pa.string())
    column = table[name].combine_chunks()
    if not (pa.types.is_string(column.type) or pa.types.is_null(column.type)):
        raise TypeError(f"{name} is {column.type}, expected text")
    return column.cast(pa.string())


def _blank_to_null(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _metrics_table(
    objects: list[dict[str, Any]], kinds: dict[str, MetricKind], skip: Sequence[str] = ()
) -> pa.Table:
    """The metric columns of `objects` (the union of their keys), cast to the contract's types.

    Arrow infers each column strictly (an int next to a string, or a bool next to an int, is an
    error), then a safe cast brings it to its kind: a fractional `sent` raises instead of being
    truncated.
    """
    if not objects:
        return pa.table({})
    return _typed(pa.Table.from_struct_array(pa.array(objects)), kinds, skip)


def _typed(inferred: pa.Table, kinds: dict[str, MetricKind], skip: Sequence[str]) -> pa.Table:
    columns = {}
    for name, column in zip(inferred.column_names, inferred.columns, strict=True):
        if name in skip:
            continue
        if name in _RESERVED:
            raise ValueError(f"a metric named {name!r}")  # the reference renames it
        kind = _kind_of(name, column.type)
        known = kinds.setdefault(name, kind)
        if known != kind and not {known, kind} <= {"number", "amount"}:
            raise ValueError(f"metric {name!r} is {kind} here but {known} elsewhere")
        columns[name] = column.cast(arrow_type(kind))  # safe: raises rather than truncate
    return pa.table(columns)


def _kind_of(name: str, inferred: pa.DataType) -> MetricKind:
    """The column's kind: the contract's for documented metrics, else from Arrow's inference."""
    numeric = pa.types.is_integer(inferred) or pa.types.is_floating(inferred)
    documented = documented_kind(name)
    if documented is not None:
        if numeric or pa.types.is_null(inferred):
            return documented
        raise TypeError(f"metric {name!r} is {inferred}, expected a number")
    if numeric or pa.types.is_null(inferred):
        return "number"
    if pa.types.is_string(inferred):
        return "text"
    if pa.types.is_boolean(inferred):
        return "flag"
    raise TypeError(f"metric {name!r} is {inferred}")  # nested: the reference stores JSON text


def _with_identity(
    metrics: pa.Table,
    rows: pa.Array,
    responses: Sequence[Response],
    days: list[date],
    day_pair: list[int],
    *,
    channel: str | None = None,
    names: pa.Array | None = None,
    api_ids: pa.Array | None = None,
) -> pa.Table:
    """Identity columns first (taken per row from its day and response), then the metrics."""
    pair_of_day = pa.array(day_pair, pa.int32())
    pair = pc.take(pair_of_day, rows)
    columns: dict[str, pa.Array] = {
        "campaign_id": pc.take(pa.array([r.campaign_id for r in responses], pa.string()), pair),
        "send_id": pc.take(pa.array([r.send_id for r in responses], pa.string()), pair),
        "date": pc.take(pa.array(days, pa.date32()), rows),
    }
    if channel is not None:
        columns["channel"] = pa.array([channel] * len(rows), pa.string())
        columns["variation_name"] = names
        columns["variation_api_id"] = api_ids
    for name in metrics.column_names:
        columns[name] = metrics[name]
    pulled = pa.array([r.pulled_at for r in responses], IDENTITY_TYPES[PULLED_AT])
    columns[PULLED_AT] = pc.take(pulled, pair)
    columns[PAIR] = pair
    return pa.table(columns)


def _empty_variation() -> pa.Table:
    names = ("campaign_id", "send_id", "date", "channel", "variation_name", "variation_api_id")
    columns = {n: pa.array([], IDENTITY_TYPES[n]) for n in names}
    columns[PULLED_AT] = pa.array([], IDENTITY_TYPES[PULLED_AT])
    columns[PAIR] = pa.array([], pa.int32())
    return pa.table(columns)

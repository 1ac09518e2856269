"""Flattening: one `/sends/data_series` response into rows of `send_variation_daily` and `send_daily`.

Pure functions over plain data. Every key Braze sends is kept as its own column (unknown keys
included); values are brought to their column's kind by `columns.coerce_metric`, so types stay
stable across pulls. Control-group variations are rows like any other; empty channel arrays give
no rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from braze_sends.columns import PULLED_AT, MetricKind, coerce_metric
from braze_sends.errors import UnexpectedResponseError

# Keys of a day object that are not day-level metrics.
_DAY_STRUCTURE = frozenset({"time", "messages"})
# Keys of a variation object that identify the variation rather than measure it.
_VARIATION_IDENTITY = frozenset({"variation_name", "variation_api_id"})
# Columns a Braze key may not overwrite.
_RESERVED = frozenset({"campaign_id", "send_id", "date", "channel", PULLED_AT})


@dataclass
class FlatSeries:
    """The rows of one pair's response, plus the kind of every metric column seen."""

    variation_rows: list[dict[str, Any]] = field(default_factory=list)
    daily_rows: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, MetricKind] = field(default_factory=dict)

    @property
    def dates(self) -> list[date]:
        return [row["date"] for row in self.daily_rows]


def flatten_series(
    campaign_id: str, send_id: str, data: list[Any], *, pulled_at: datetime
) -> FlatSeries:
    """Flatten one pair's `data` array.

    Args:
        campaign_id, send_id: the pair the response belongs to.
        data: the response's `data` list, one object per day.
        pulled_at: when the response was received (stored on every row).

    Raises:
        UnexpectedResponseError: the response is not the documented shape, or a value cannot
            be stored without loss. The message names the pair.
    """
    who = {"campaign_id": campaign_id, "send_id": send_id}
    flat = FlatSeries()
    days: dict[date, dict[str, Any]] = {}
    for position, day in enumerate(data):
        if not isinstance(day, dict):
            raise UnexpectedResponseError(f"data[{position}] is not an object: {day!r:.80}", **who)
        days[_parse_day(day.get("time"), position, who)] = day  # a repeated day: the last wins
    try:
        for day_date in sorted(days):
            day = days[day_date]
            base = {**who, "date": day_date}
            daily = dict(base)
            for key, value in day.items():
                if key not in _DAY_STRUCTURE:
                    _put_metric(daily, key, value, flat.kinds)
            daily[PULLED_AT] = pulled_at
            flat.daily_rows.append(daily)
            for channel, variations in _channels(day.get("messages"), day_date, who):
                for row in _variation_rows(base, channel, variations, flat.kinds, who):
                    row[PULLED_AT] = pulled_at
                    flat.variation_rows.append(row)
    except ValueError as exc:
        raise UnexpectedResponseError(str(exc), **who) from None
    return flat


def day_activity(flat: FlatSeries) -> dict[date, float]:
    """The sum of every numeric metric per day: zero means Braze reported nothing that day."""
    activity = {row["date"]: 0.0 for row in flat.daily_rows}
    for rows in (flat.daily_rows, flat.variation_rows):
        for row in rows:
            for key, value in row.items():
                if flat.kinds.get(key) in ("count", "amount", "number") and value:
                    activity[row["date"]] = activity.get(row["date"], 0.0) + abs(value)
    return activity


def _parse_day(value: Any, position: int, who: dict[str, str]) -> date:
    if not isinstance(value, str):
        raise UnexpectedResponseError(f"data[{position}] has no `time` date: {value!r:.40}", **who)
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise UnexpectedResponseError(
            f"data[{position}].time is not a YYYY-MM-DD date: {value!r:.40}", **who
        ) from None


def _channels(messages: Any, day_date: date, who: dict[str, str]):
    if messages is None:
        return
    if not isinstance(messages, dict):
        raise UnexpectedResponseError(f"{day_date}: `messages` is not an object", **who)
    for channel, variations in messages.items():
        if variations is None:
            continue
        if isinstance(variations, dict):  # one variation not wrapped in a list
            variations = [variations]
        if not isinstance(variations, list):
            raise UnexpectedResponseError(f"{day_date}: `{channel}` is not a list", **who)
        yield channel, variations


def _variation_rows(
    base: dict[str, Any],
    channel: str,
    variations: list[Any],
    kinds: dict[str, MetricKind],
    who: dict[str, str],
):
    seen: set[str] = set()
    for index, variation in enumerate(variations):
        if not isinstance(variation, dict):
            raise UnexpectedResponseError(
                f"{base['date']}: {channel}[{index}] is not an object", **who
            )
        api_id = variation.get("variation_api_id")
        api_id = None if api_id is None else str(api_id)
        name = variation.get("variation_name")
        name = str(name) if name not in (None, "") else (api_id or f"variation_{index}")
        name = _distinct(name, api_id or str(index), seen)
        seen.add(name)
        row = {**base, "channel": channel, "variation_name": name, "variation_api_id": api_id}
        for key, value in variation.items():
            if key not in _VARIATION_IDENTITY:
                _put_metric(row, key, value, kinds)
        yield row


def _distinct(name: str, tag: str, seen: set[str]) -> str:
    """Keep variations of one channel that share a name apart: "A", "A [id]", "A [id 2]"..."""
    candidate, n = name, 1
    while candidate in seen:
        candidate = f"{name} [{tag}]" if n == 1 else f"{name} [{tag} {n}]"
        n += 1
    return candidate


def _put_metric(row: dict[str, Any], key: str, value: Any, kinds: dict[str, MetricKind]) -> None:
    if key in _RESERVED:
        key = f"braze_{key}"
    kind, row[key] = coerce_metric(key, value)
    if kind is None:
        return
    known = kinds.setdefault(key, kind)
    if known != kind:
        if {known, kind} <= {"number", "amount"}:
            return
        raise ValueError(f"metric {key!r} is {kind} here but {known} elsewhere in the response")

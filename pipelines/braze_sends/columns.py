"""Column names and types of the data contract: the one place that decides a column's type.

- Identity columns (`campaign_id`, `send_id`, `date`, `channel`, `variation_name`, ...) are fixed.
- Metrics Braze documents are counts (BIGINT), except `revenue` and anything named like it
  (DOUBLE), so a `0` one day and `12.5` the next stay one numeric type.
- Metrics Braze has not documented yet (new channels, `machine_open`-like keys) are kept as their
  own columns: numbers as DOUBLE (a JSON `3` today may be `2.5` tomorrow; DOUBLE holds both
  without loss), text as TEXT, anything nested as JSON text. They never turn into variant columns.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

import pyarrow as pa

from braze_sends.settings import DAILY_TABLE, SENDS_TABLE, VARIATION_TABLE

MetricKind = Literal["count", "amount", "number", "text", "flag"]

PULLED_AT = "pulled_at"

VARIATION_KEY = ("campaign_id", "send_id", "date", "channel", "variation_name")
DAILY_KEY = ("campaign_id", "send_id", "date")
SENDS_KEY = ("campaign_id", "send_id")

# Identity columns of each table, in the order they lead the table.
VARIATION_IDENTITY = (*VARIATION_KEY, "variation_api_id")
DAILY_IDENTITY = DAILY_KEY

IDENTITY_TYPES: dict[str, pa.DataType] = {
    "campaign_id": pa.string(),
    "send_id": pa.string(),
    "date": pa.date32(),
    "channel": pa.string(),
    "variation_name": pa.string(),
    "variation_api_id": pa.string(),
    PULLED_AT: pa.timestamp("us", tz="UTC"),
}

# Every count the fact sheet documents, across channels, control groups and day totals.
COUNT_METRICS = frozenset(
    {
        # push
        "sent",
        "delivered",
        "undelivered",
        "delivery_failed",
        "direct_opens",
        "total_opens",
        "bounces",
        "body_clicks",
        # email
        "opens",
        "unique_opens",
        "clicks",
        "unique_clicks",
        "unsubscribes",
        "reported_spam",
        "machine_open",
        "machine_amp_open",
        # sms
        "sent_to_carrier",
        "rejected",
        "opt_out",
        "help",
        # whats_app
        "failed",
        "read",
        # webhook
        "errors",
        # content cards
        "total_clicks",
        "total_dismissals",
        "total_impressions",
        "unique_dismissals",
        "unique_impressions",
        # in-app messages
        "impressions",
        "first_button_clicks",
        "second_button_clicks",
        # any channel, control groups, day totals
        "unique_recipients",
        "enrolled",
    }
)
_COUNT_PATTERNS = (
    re.compile(r"^conversions\d*(_by_send_time)?$"),
    re.compile(r"^(carousel_slide|notif_button)_\d+_.*_click$"),
)
_AMOUNT_PATTERN = re.compile(r"revenue")

_ARROW_TYPES: dict[MetricKind, pa.DataType] = {
    "count": pa.int64(),
    "amount": pa.float64(),
    "number": pa.float64(),
    "text": pa.string(),
    "flag": pa.bool_(),
}
DLT_TYPES: dict[MetricKind, str] = {
    "count": "bigint",
    "amount": "double",
    "number": "double",
    "text": "text",
    "flag": "bool",
}


def documented_kind(name: str) -> MetricKind | None:
    """The kind of a metric Braze documents, or None for a key unknown today."""
    if _AMOUNT_PATTERN.search(name):
        return "amount"
    if name in COUNT_METRICS or any(p.match(name) for p in _COUNT_PATTERNS):
        return "count"
    return None


def coerce_metric(name: str, value: Any) -> tuple[MetricKind | None, Any]:
    """Bring one metric value to its column's kind.

    Returns:
        (kind, value); kind None means the value is null and says nothing about the type.

    Raises:
        ValueError: the value cannot be stored in the column without losing information
            (e.g. `sent: 2.5`, or text where a documented metric is numeric).
    """
    if value is None:
        return None, None
    kind = documented_kind(name)
    if isinstance(value, bool):
        if kind is not None:
            raise ValueError(f"metric {name!r} is {value!r}, expected a number")
        return "flag", value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {name!r} is {value!r}, expected a finite number")
        if kind == "count":
            if value != int(value):
                raise ValueError(f"metric {name!r} is {value!r}, expected a whole number")
            return "count", int(value)
        return kind or "number", float(value)
    if kind is not None:
        raise ValueError(f"metric {name!r} is {value!r}, expected a number")
    if isinstance(value, str):
        return "text", value
    return "text", json.dumps(value, sort_keys=True, default=str)


def fits(kind: MetricKind, stored_type: str | None) -> bool:
    """Whether a value of `kind` can be written to a column the warehouse holds as `stored_type`
    without a silent type change (None: the column does not exist yet)."""
    if stored_type is None:
        return True
    if kind in ("number", "amount"):
        return stored_type in ("double", "decimal")
    return DLT_TYPES[kind] == stored_type


def arrow_type(kind: MetricKind) -> pa.DataType:
    return _ARROW_TYPES[kind]


def contract_columns(table: str) -> dict[str, dict[str, Any]]:
    """dlt column hints of the fixed columns of `table` (metrics are added as they appear)."""
    text = {"data_type": "text", "nullable": False}
    if table == VARIATION_TABLE:
        columns = {
            "campaign_id": {**text, "primary_key": True},
            "send_id": {**text, "primary_key": True},
            "date": {"data_type": "date", "nullable": False, "primary_key": True},
            "channel": {**text, "primary_key": True},
            "variation_name": {**text, "primary_key": True},
            "variation_api_id": {"data_type": "text", "nullable": True},
        }
    elif table == DAILY_TABLE:
        columns = {
            "campaign_id": {**text, "primary_key": True},
            "send_id": {**text, "primary_key": True},
            "date": {"data_type": "date", "nullable": False, "primary_key": True},
        }
    elif table == SENDS_TABLE:
        return {
            "campaign_id": {**text, "primary_key": True},
            "send_id": {**text, "primary_key": True},
        }
    else:
        raise KeyError(table)
    columns[PULLED_AT] = {"data_type": "timestamp", "timezone": True, "nullable": False}
    return columns

"""What the dashboard shows, read from the reporting views of a DuckDB file, read-only.

Each page view opens its own read-only connection and closes it before answering, so the
dashboard never holds DuckDB's file lock while a pipeline run wants to write. A run holding the
lock makes `open_store` raise `StoreBusy` (the page says so and reloads), not wait forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from braze_sends.views import (
    CAMPAIGN_CHANNEL_DAILY,
    CAMPAIGN_VARIATION_SUMMARY,
    SEND_CHANNEL_DAILY,
    SEND_SUMMARY,
    SEND_VARIATION_SUMMARY,
)

# Metrics a person can chart day by day (columns of the channel-daily views).
DAILY_METRICS = (
    "sent",
    "delivered",
    "opens",
    "unique_opens",
    "total_opens",
    "clicks",
    "body_clicks",
    "total_clicks",
    "impressions",
    "conversions",
    "conversions1",
    "conversions2",
    "conversions3",
    "revenue",
    "unique_recipients",
    "delivery_rate",
    "open_rate",
    "unique_open_rate",
    "click_rate",
    "conversion_rate",
    "revenue_per_recipient",
)
VARIATION_RATES = ("delivery_rate", "open_rate", "click_rate", "conversion_rate")
LIVE_STATUSES = ("new", "open", "failed")
# As `braze-sends status`: closing within 48 h without a successful pull in the last 24 h.
AT_RISK_HORIZON = timedelta(hours=48)
RECENT_PULL = timedelta(hours=24)
BUSY_RETRY_SECONDS = 3.0


class StoreMissing(LookupError):
    """The DuckDB file, or its reporting views, are not there yet."""


class StoreBusy(RuntimeError):
    """A pipeline run holds the DuckDB file's write lock right now."""


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str | None
    sends: int
    sent: int
    control_enrolled: int

    @property
    def label(self) -> str:
        return f"{self.name or self.campaign_id} ({self.sends} send{'s' * (self.sends != 1)})"


@dataclass(frozen=True)
class Selection:
    """What the page shows: a campaign, and one of its sends or all of them."""

    campaign_id: str
    send_id: str | None
    metric: str


@contextmanager
def open_store(db: Path, *, busy_retry: float = BUSY_RETRY_SECONDS) -> Iterator[Store]:
    """A read-only connection to `db` for one page view.

    Raises:
        StoreMissing: no such file (run `make demo` or a pipeline run first).
        StoreBusy: a run kept the write lock for `busy_retry` seconds.
    """
    if not db.exists():
        raise StoreMissing(f"{db} does not exist: run `make demo` (or `braze-sends run`) first")
    deadline = time.monotonic() + busy_retry
    while True:
        try:
            con = duckdb.connect(str(db), read_only=True)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise StoreBusy(f"{db} is being written by a pipeline run: {exc}") from None
            time.sleep(0.2)
    try:
        yield Store(con)
    finally:
        con.close()


class Store:
    """The dashboard's queries (dataset `braze`), over one read-only connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, dataset: str = "braze") -> None:
        self.con = con
        self.dataset = dataset
        views = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                [dataset],
            ).fetchall()
        }
        missing = [
            v.name
            for v in (SEND_CHANNEL_DAILY, SEND_SUMMARY, CAMPAIGN_CHANNEL_DAILY)
            if v.name not in views
        ]
        if missing:
            raise StoreMissing(
                f"the reporting views ({', '.join(missing)}) are not in dataset {dataset!r}: "
                "run `braze-sends views` (or a pipeline run) first"
            )

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _view(self, name: str) -> str:
        return f'"{self.dataset}"."{name}"'

    def campaigns(self) -> list[Campaign]:
        """Every campaign with loaded data, the best one to show first."""
        rows = self._rows(
            f"""
            SELECT campaign_id, max(campaign_name) AS name, count(*) AS sends,
                   coalesce(sum(sent), 0) AS sent,
                   coalesce(sum(control_enrolled), 0) AS control_enrolled
            FROM {self._view(SEND_SUMMARY.name)}
            WHERE days IS NOT NULL
            GROUP BY campaign_id
            ORDER BY (coalesce(sum(control_enrolled), 0) > 0) DESC, sent DESC, campaign_id
            """
        )
        return [Campaign(**row) for row in rows]

    def sends(self, campaign_id: str) -> list[dict[str, Any]]:
        return self._rows(
            f"""
            SELECT send_id, status, sent_date, sent, control_enrolled
            FROM {self._view(SEND_SUMMARY.name)}
            WHERE campaign_id = ? AND days IS NOT NULL
            ORDER BY sent_date DESC NULLS LAST, send_id
            """,
            [campaign_id],
        )

    def labels(self, campaign_id: str) -> dict[str, str]:
        """What `conversions`..`conversions3` count for this campaign (when known)."""
        rows = self._rows(
            f"""
            SELECT conversions_label, conversions1_label, conversions2_label, conversions3_label
            FROM {self._view(SEND_SUMMARY.name)} WHERE campaign_id = ? LIMIT 1
            """,
            [campaign_id],
        )
        if not rows:
            return {}
        return {k.removesuffix("_label"): v for k, v in rows[0].items() if v}

    def daily(self, selection: Selection) -> list[dict[str, Any]]:
        """The daily series of the selected metric, by channel."""
        if selection.metric not in DAILY_METRICS:
            raise ValueError(f"unknown metric {selection.metric!r}")
        metric = f'"{selection.metric}"'
        if selection.send_id is None:
            sql = f"""
                SELECT date, channel, {metric} AS value
                FROM {self._view(CAMPAIGN_CHANNEL_DAILY.name)}
                WHERE campaign_id = ? ORDER BY date, channel"""
            return self._rows(sql, [selection.campaign_id])
        sql = f"""
            SELECT date, channel, {metric} AS value
            FROM {self._view(SEND_CHANNEL_DAILY.name)}
            WHERE campaign_id = ? AND send_id = ? ORDER BY date, channel"""
        return self._rows(sql, [selection.campaign_id, selection.send_id])

    def variations(self, selection: Selection) -> list[dict[str, Any]]:
        """Rates of every variation (control group included) over the send or campaign."""
        rates = ", ".join(VARIATION_RATES)
        columns = f"channel, variation_name, is_control, sent, enrolled, conversions, {rates}"
        order = "ORDER BY channel, is_control, variation_name"
        if selection.send_id is None:
            sql = f"""SELECT {columns} FROM {self._view(CAMPAIGN_VARIATION_SUMMARY.name)}
                WHERE campaign_id = ? {order}"""
            return self._rows(sql, [selection.campaign_id])
        sql = f"""SELECT {columns} FROM {self._view(SEND_VARIATION_SUMMARY.name)}
            WHERE campaign_id = ? AND send_id = ? {order}"""
        return self._rows(sql, [selection.campaign_id, selection.send_id])

    def live_sends(self, now: datetime, limit: int = 25) -> list[dict[str, Any]]:
        """Sends whose window is still open, closing first, each flagged when at risk."""
        statuses = ", ".join(f"'{s}'" for s in LIVE_STATUSES)
        rows = self._rows(
            f"""
            SELECT campaign_id, campaign_name, send_id, status, sent_date, window_closes_at,
                   last_pulled_at, last_error
            FROM {self._view(SEND_SUMMARY.name)}
            WHERE status IN ({statuses})
            ORDER BY window_closes_at NULLS LAST, campaign_id, send_id
            LIMIT ?
            """,
            [limit],
        )
        for row in rows:
            row["at_risk"] = at_risk(row["window_closes_at"], row["last_pulled_at"], now)
        return rows

    def status_counts(self) -> dict[str, int]:
        return dict(
            self.con.execute(
                f"SELECT status, count(*) FROM {self._view(SEND_SUMMARY.name)} GROUP BY status"
            ).fetchall()
        )

    def loaded_at(self) -> datetime | None:
        """When the last load finished (dlt's `_dlt_loads`)."""
        try:
            row = self.con.execute(
                f'SELECT max(inserted_at) FROM "{self.dataset}"."_dlt_loads"'
            ).fetchone()
        except duckdb.Error:
            return None
        return row[0] if row else None


def at_risk(closes_at: datetime | None, last_pulled_at: datetime | None, now: datetime) -> bool:
    """As `braze-sends status` says it: the window closes within 48 h and no successful pull
    happened in the last 24 h."""
    if closes_at is None or closes_at - now > AT_RISK_HORIZON:
        return False
    return last_pulled_at is None or now - last_pulled_at > RECENT_PULL

"""The dashboard's three charts as plotly figures (pure: rows in, figure out).

1. `daily_series`: a metric day by day, one line per channel.
2. `variation_rates`: delivery, open, click and conversion rates side by side for every
   variation, the control group included (it only has a conversion rate: it received nothing).
3. `window_status`: the sends whose window is still open, as the hours left before Braze deletes
   their analytics, closing first, at-risk ones in red.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

RATE_LABELS = {
    "delivery_rate": "delivery rate",
    "open_rate": "open rate",
    "unique_open_rate": "unique open rate",
    "click_rate": "click rate",
    "conversion_rate": "conversion rate",
    "revenue_per_recipient": "revenue per recipient (USD)",
}
STATUS_COLORS = {
    "at risk": "#d62728",
    "failed": "#ff7f0e",
    "open": "#1f77b4",
    "new": "#7f7f7f",
}
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 60, "b": 60},
    "legend": {"orientation": "h", "y": -0.2},
    "height": 420,
}


def is_rate(metric: str) -> bool:
    return metric.endswith("_rate")


def metric_title(metric: str, labels: dict[str, str]) -> str:
    """The metric as a person reads it: `conversions (Performs Custom Event: checkout)`."""
    base = RATE_LABELS.get(metric, metric)
    if metric in labels:
        return f"{base} ({labels[metric]})"
    if metric == "conversion_rate" and "conversions" in labels:
        return f"{base} ({labels['conversions']})"
    return base


def daily_series(rows: list[dict[str, Any]], metric: str, title: str) -> go.Figure:
    """One line per channel: `rows` have `date`, `channel` and `value`."""
    by_channel: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for row in rows:
        by_channel[row["channel"]].append((row["date"], row["value"]))
    figure = go.Figure(layout={**_LAYOUT, "title": {"text": title}})
    for channel, points in sorted(by_channel.items()):
        figure.add_trace(
            go.Scatter(
                x=[str(day) for day, _ in points],
                y=[value for _, value in points],
                mode="lines+markers",
                name=channel,
                connectgaps=False,
            )
        )
    figure.update_xaxes(title_text="date (workspace time zone)", type="date")
    figure.update_yaxes(
        title_text=RATE_LABELS.get(metric, metric),
        tickformat=".1%" if is_rate(metric) else ",",
        rangemode="tozero",
    )
    return figure


def variation_rates(rows: list[dict[str, Any]], rates: tuple[str, ...], title: str) -> go.Figure:
    """Grouped bars: one group per channel and variation, one bar per rate."""
    names = [_variation_label(row) for row in rows]
    figure = go.Figure(layout={**_LAYOUT, "title": {"text": title}, "barmode": "group"})
    for rate in rates:
        figure.add_trace(
            go.Bar(
                x=names,
                y=[row[rate] for row in rows],
                name=RATE_LABELS[rate],
                hovertemplate="%{x}<br>" + RATE_LABELS[rate] + ": %{y:.2%}<extra></extra>",
            )
        )
    figure.update_yaxes(title_text="rate", tickformat=".0%", rangemode="tozero")
    figure.update_xaxes(tickangle=0, automargin=True)
    return figure


def _variation_label(row: dict[str, Any]) -> str:
    if row["is_control"]:
        size = f"enrolled {row['enrolled'] or 0:,}"
    else:
        size = f"sent {row['sent'] or 0:,}"
    return f"{row['channel']}<br>{row['variation_name']}<br>{size}"


def window_status(rows: list[dict[str, Any]], now: datetime) -> go.Figure:
    """Horizontal bars: hours left in each open send's window, closing first at the top."""
    figure = go.Figure(
        layout={
            **_LAYOUT,
            "title": {"text": "Open send windows: hours left before Braze deletes the data"},
            "height": max(320, 60 + 22 * len(rows)),
            "barmode": "overlay",
        }
    )
    by_state: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_state["at risk" if row["at_risk"] else row["status"]].append(row)
    order = [_send_label(row) for row in rows]
    for state, color in STATUS_COLORS.items():
        members = by_state.get(state, [])
        if not members:
            continue
        figure.add_trace(
            go.Bar(
                orientation="h",
                y=[_send_label(row) for row in members],
                x=[_hours_left(row, now) for row in members],
                name=state,
                marker_color=color,
                customdata=[
                    [
                        str(row["window_closes_at"]),
                        str(row["last_pulled_at"] or "never"),
                        row["last_error"] or "",
                    ]
                    for row in members
                ],
                hovertemplate=(
                    "%{y}<br>closes %{customdata[0]}<br>last pulled %{customdata[1]}"
                    "<br>%{customdata[2]}<extra>" + state + "</extra>"
                ),
            )
        )
    figure.update_yaxes(categoryorder="array", categoryarray=order[::-1], automargin=True)
    figure.update_xaxes(title_text="hours until the window closes", rangemode="tozero")
    return figure


def _send_label(row: dict[str, Any]) -> str:
    return f"{row['campaign_name'] or row['campaign_id']} / {row['send_id']}"


def _hours_left(row: dict[str, Any], now: datetime) -> float | None:
    closes = row["window_closes_at"]
    if closes is None:
        return None
    return round(max(0.0, (closes - now).total_seconds() / 3600), 1)

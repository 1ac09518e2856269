"""What the CLI tells a person: the run summary and the demo report (text only, no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from braze_sends.settings import DAILY_TABLE, SENDS_TABLE, VARIATION_TABLE

MAX_FAILURES_SHOWN = 10


def run_summary(summary: dict[str, Any], *, pending_loaded: bool = False) -> str:
    """The lines printed at the end of every run."""
    if not summary:
        return "braze-sends: nothing was run"
    rows = summary.get("rows", {})
    statuses = ", ".join(f"{k}×{v}" for k, v in sorted(summary.get("statuses", {}).items()))
    lines = [
        (
            f"pairs: {summary.get('known', 0):,} registered ({summary.get('registered', 0):,} "
            f"new), {summary.get('due', 0):,} due, {summary.get('pulled', 0):,} pulled, "
            f"{summary.get('failed', 0):,} failed, {summary.get('deferred', 0):,} left for a "
            "later run"
        ),
        (
            f"rows: {VARIATION_TABLE} {rows.get(VARIATION_TABLE, 0):,}, "
            f"{DAILY_TABLE} {rows.get(DAILY_TABLE, 0):,}"
        ),
        (
            f"requests: {summary.get('requests', 0):,} ({summary.get('retries', 0):,} retries"
            + (f"; {statuses}" if statuses else "")
            + f") in {summary.get('seconds', 0):.1f} s"
        ),
        "sends by status: " + _counts(summary.get("status_counts", {})),
    ]
    if summary.get("retention_signals"):
        lines.append(
            f"retention: {summary['retention_signals']} send(s) answered with zeros over stored "
            f"numbers; {summary.get('withheld_days', 0)} stored day(s) kept as they were"
        )
    if pending_loaded:
        lines.insert(0, "finished loading what a previous, interrupted run had left pending")
    failures = summary.get("failures", [])
    if failures:
        lines.append(
            f"failed pairs ({min(len(failures), MAX_FAILURES_SHOWN)} of "
            f"{summary.get('failed', len(failures))} shown):"
        )
        lines.extend(f"  {f['error']}" for f in failures[:MAX_FAILURES_SHOWN])
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def demo_report(
    table_rows: dict[str, int], top_sends: list[tuple], status_counts: dict[str, int], db: str
) -> str:
    """The report `braze-sends demo` prints after loading the sandbox's catalog."""
    parts = [
        f"Loaded into {db} (dataset `braze`):",
        table(
            ["table", "rows"],
            [
                (name, table_rows.get(name, 0))
                for name in (VARIATION_TABLE, DAILY_TABLE, SENDS_TABLE)
            ],
        ),
        "",
        "Sends by status: " + _counts(status_counts),
        "",
        "Top sends by messages sent:",
        table(["campaign_id", "send_id", "sent", "delivered", "conversions", "revenue"], top_sends),
    ]
    if status_counts.get("expired"):
        parts += [
            "",
            (
                f"{status_counts['expired']} send(s) were already past Braze's 14-day retention "
                "when first seen: their data is lost (the alarm `braze-sends status` raises)."
            ),
        ]
    return "\n".join(parts)


def _counts(counts: dict[str, int]) -> str:
    order = ["new", "open", "failed", "final", "expired"]
    keys = sorted(counts, key=lambda k: (order.index(k) if k in order else 99, k))
    return ", ".join(f"{k} {counts[k]:,}" for k in keys) or "none"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit() or text == ""

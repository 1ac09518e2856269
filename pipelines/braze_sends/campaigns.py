"""The `campaigns` dimension: each registered campaign's metadata from `GET /campaigns/details`.

Analysts join it on `campaign_id` to read a campaign's name, tags and channels, and to read
`conversions`, `conversions1`, `conversions2`, `conversions3` as what they count ("Performs
Custom Event: checkout_completed") instead of events A to D.

Cadence (all in pipeline state, `campaigns[campaign_id]`):

- a campaign is fetched on the first run that knows it (a pair of it registered, now or before);
- then at most once per refresh period (`campaigns_refresh_hours`, default 24), and only while it
  has a send whose window is still open: a campaign whose sends are all `final`/`expired` is not
  asked again, so a run with nothing open still makes no request;
- a campaign Braze refuses (`400`) is asked again after a refresh period; one that failed on a
  transient error (5xx, timeouts, after the client's retries) on the next run;
- a key without the `campaigns.details` permission (`403`) stops the refresh for a refresh
  period, with a warning; the send data is never affected by any of this.

Requests go through the same `RateLimiter` as the send pulls (one pool per workspace).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from braze_sends import lifecycle, registry
from braze_sends.client import BrazeClient
from braze_sends.errors import BrazeAPIError, ConfigurationError

logger = logging.getLogger(__name__)

CAMPAIGNS_TABLE = "campaigns"
DEFAULT_REFRESH_HOURS = 24.0
DETAILS_PERMISSION = "campaigns.details"
# Braze's conversion events A..D are these metric columns, in this order.
CONVERSION_METRICS = ("conversions", "conversions1", "conversions2", "conversions3")
# Fields of a conversion behavior that say what it is about, by behavior type.
_BEHAVIOR_DETAILS = (
    "custom_event_name",
    "product",
    "product_name",
    "campaign_name",
    "app_name",
    "url",
    "subscription_group_name",
)
_STATE_KEY = "campaigns"
_DENIED_KEY = "campaigns_denied"


@dataclass(frozen=True)
class CampaignOptions:
    """How the campaign refresh behaves. Validated on creation (`ConfigurationError`)."""

    refresh_hours: float = DEFAULT_REFRESH_HOURS
    workers: int = 8
    enabled: bool = True

    def __post_init__(self) -> None:
        hours = self.refresh_hours
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
            raise ConfigurationError(
                f"campaigns_refresh_hours must be a number of hours > 0, got {hours!r}"
            )

    @property
    def refresh(self) -> timedelta:
        return timedelta(hours=self.refresh_hours)


# -- pure: what to ask, and the row an answer becomes -------------------------------------------


def behavior_label(behavior: Any) -> str | None:
    """A conversion behavior as a person reads it: "Performs Custom Event: checkout_completed",
    "Makes Any Purchase"; None when Braze gave nothing usable."""
    if not isinstance(behavior, dict):
        return None
    kind = str(behavior.get("type") or "").strip()
    detail = next(
        (str(behavior[k]) for k in _BEHAVIOR_DETAILS if behavior.get(k) not in (None, "")), None
    )
    if kind and detail:
        return f"{kind}: {detail}"
    return kind or detail


def campaign_row(campaign_id: str, details: dict[str, Any], *, pulled_at: datetime) -> dict:
    """One `campaigns` row from a `/campaigns/details` answer (missing fields become nulls)."""
    behaviors = details.get("conversion_behaviors")
    behaviors = behaviors if isinstance(behaviors, list) else []
    row: dict[str, Any] = {
        "campaign_id": campaign_id,
        "name": _text(details.get("name")),
        "description": _text(details.get("description")),
        "tags": _joined(details.get("tags")),
        "channels": _joined(details.get("channels")),
        "archived": _flag(details.get("archived")),
        "enabled": _flag(details.get("enabled")),
        "draft": _flag(details.get("draft")),
        "schedule_type": _text(details.get("schedule_type")),
        "teams": _joined(details.get("teams")),
        "created_at": _moment(details.get("created_at")),
        "updated_at": _moment(details.get("updated_at")),
        "first_sent": _moment(details.get("first_sent")),
        "last_sent": _moment(details.get("last_sent")),
    }
    for index, metric in enumerate(CONVERSION_METRICS):
        behavior = behaviors[index] if index < len(behaviors) else None
        row[f"{metric}_label"] = behavior_label(behavior)
        window = behavior.get("window") if isinstance(behavior, dict) else None
        row[f"{metric}_window_seconds"] = _whole(window)
    row["conversion_behaviors"] = json.dumps(behaviors, sort_keys=True, default=str)
    messages = details.get("messages")
    row["messages"] = json.dumps(messages, sort_keys=True, default=str) if messages else None
    row["pulled_at"] = pulled_at
    return row


def column_hints() -> dict[str, dict[str, Any]]:
    """dlt column hints of the `campaigns` table (every column exists from the first load)."""
    text = {"data_type": "text", "nullable": True}
    stamp = {"data_type": "timestamp", "timezone": True, "nullable": True}
    flag = {"data_type": "bool", "nullable": True}
    columns: dict[str, dict[str, Any]] = {
        "campaign_id": {"data_type": "text", "nullable": False, "primary_key": True},
        "name": text,
        "description": text,
        "tags": text,
        "channels": text,
        "archived": flag,
        "enabled": flag,
        "draft": flag,
        "schedule_type": text,
        "teams": text,
        "created_at": stamp,
        "updated_at": stamp,
        "first_sent": stamp,
        "last_sent": stamp,
    }
    for metric in CONVERSION_METRICS:
        columns[f"{metric}_label"] = text
        columns[f"{metric}_window_seconds"] = {"data_type": "bigint", "nullable": True}
    columns["conversion_behaviors"] = text
    columns["messages"] = text
    columns["pulled_at"] = {"data_type": "timestamp", "timezone": True, "nullable": False}
    return {name: dict(hint) for name, hint in columns.items()}


def due_campaigns(
    campaign_ids: Iterable[str],
    active: set[str],
    state: dict[str, Any],
    *,
    now: datetime,
    refresh: timedelta,
) -> list[str]:
    """The campaigns to ask for this run, never fetched first, then the least recently asked.

    Args:
        campaign_ids: every campaign with a registered pair.
        active: those with a send whose window is still open.
        state: the source state (`campaigns` entries are read, not changed).
    """
    entries = state.get(_STATE_KEY, {})
    due: list[tuple[str, str]] = []
    for campaign_id in set(campaign_ids):
        entry = entries.get(campaign_id)
        if entry is None:
            due.append(("", campaign_id))
            continue
        attempted = datetime.fromisoformat(entry["attempted_at"])
        period_over = now - attempted >= refresh
        if entry.get("pulled_at") is None:
            if entry.get("retry") or period_over:
                due.append((entry["attempted_at"], campaign_id))
        elif campaign_id in active and period_over:
            due.append((entry["attempted_at"], campaign_id))
    return [campaign_id for _, campaign_id in sorted(due)]


def denied_until(state: dict[str, Any], refresh: timedelta) -> datetime | None:
    """When a `403` seen earlier stops holding the refresh back (None: not held back)."""
    denied = state.get(_DENIED_KEY)
    if not denied:
        return None
    return datetime.fromisoformat(denied["at"]) + refresh


def describe_failure(campaign_id: str, error: BrazeAPIError) -> str:
    """What went wrong for one campaign and what to do, never the key."""
    status = f"HTTP {error.status}" if error.status is not None else "no response"
    if error.status == 403:
        fix = f"grant the key the `{DETAILS_PERMISSION}` permission to get campaign names"
    elif error.status == 401:
        fix = "check the API key"
    elif error.status == 400:
        fix = f"Braze does not know campaign {campaign_id!r}; check the pairs registered for it"
    elif error.retryable:
        fix = "retried on the next run"
    else:
        fix = "check base_url"
    return f"campaign_id={campaign_id!r}: /campaigns/details: {status}: {error.detail} ({fix})"


# -- the shell: one run's refresh ----------------------------------------------------------------


@dataclass
class CampaignRunSummary:
    """What one refresh did; saved in state as `campaigns_last_run`."""

    known: int = 0
    due: int = 0
    refreshed: int = 0
    failed: int = 0
    requests: int = 0
    skipped: str | None = None  # why nothing was asked, when nothing was

    def as_state(self) -> dict[str, Any]:
        return dict(self.__dict__)


def refresh_campaigns(
    connect: Callable[[], BrazeClient],
    state: dict[str, Any],
    given_campaign_ids: Iterable[str],
    options: CampaignOptions,
    *,
    clock: Callable[[], datetime],
    allowed: bool = True,
) -> Iterator[dict[str, Any]]:
    """The `campaigns` resource body: yields one row per campaign refreshed this run.

    Args:
        connect: builds the client (sharing the send pulls' rate limiter); called only when
            some campaign is due.
        state: the source state: the registry of pairs, and the campaign entries updated here.
        given_campaign_ids: campaigns of the pairs given this run (registered by this run).
        allowed: False for runs that must make no request at all (`max_requests=0`).
    """
    now = clock()
    summary = CampaignRunSummary()
    records = registry.load_records(state)
    registered = {campaign_id for campaign_id, _ in records} | registry.archived_campaigns(state)
    known = registered | set(given_campaign_ids)
    active = {r.campaign_id for r in records.values() if r.status not in lifecycle.DONE}
    active |= set(given_campaign_ids) - registered
    summary.known = len(known)
    due = due_campaigns(known, active, state, now=now, refresh=options.refresh)
    summary.due = len(due)
    held_until = denied_until(state, options.refresh)
    if not options.enabled:
        summary.skipped = "disabled (campaigns = false)"
    elif not allowed:
        summary.skipped = "the run may make no request"
    elif held_until is not None and now < held_until:
        summary.skipped = f"the key lacked `{DETAILS_PERMISSION}`; asking again after {held_until}"
    if summary.skipped or not due:
        state["campaigns_last_run"] = summary.as_state()
        return
    try:
        client = connect()
    except ConfigurationError as exc:
        summary.skipped = str(exc)
        logger.warning("campaign metadata not refreshed: %s", exc)
        state["campaigns_last_run"] = summary.as_state()
        return
    state.pop(_DENIED_KEY, None)
    entries = state.setdefault(_STATE_KEY, {})
    try:
        yield from _fetch(client, due, entries, state, summary, options, clock)
    finally:
        summary.requests = client.stats.requests
        state["campaigns_last_run"] = summary.as_state()
        logger.info(
            "campaigns: %d known, %d due, %d refreshed, %d failed (%d requests)",
            summary.known,
            summary.due,
            summary.refreshed,
            summary.failed,
            summary.requests,
        )


def _fetch(
    client: BrazeClient,
    due: list[str],
    entries: dict[str, Any],
    state: dict[str, Any],
    summary: CampaignRunSummary,
    options: CampaignOptions,
    clock: Callable[[], datetime],
) -> Iterator[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, min(options.workers, len(due)))) as pool:
        futures = {pool.submit(client.campaign_details, c): c for c in due}
        for future in as_completed(futures):
            campaign_id, at = futures[future], clock()
            entry = entries.get(campaign_id, {})
            error = future.exception()
            if error is None:
                rows.append(campaign_row(campaign_id, future.result(), pulled_at=at))
                entries[campaign_id] = {"attempted_at": at.isoformat(), "pulled_at": at.isoformat()}
                summary.refreshed += 1
                continue
            if not isinstance(error, BrazeAPIError):  # never let it cost the run its send data
                logger.warning(
                    "campaign metadata not refreshed: campaign_id=%r: %r", campaign_id, error
                )
                error = BrazeAPIError(f"{type(error).__name__}: {error}")
                error.retryable = True
            message = describe_failure(campaign_id, error)
            if error.stops_run:  # the key or the URL: every other campaign would fail the same
                state[_DENIED_KEY] = {"at": at.isoformat(), "error": message}
                logger.warning("campaign metadata not refreshed this time: %s", message)
                for other in futures:
                    other.cancel()
                break
            summary.failed += 1
            logger.warning("campaign metadata not refreshed: %s", message)
            entries[campaign_id] = {
                "attempted_at": at.isoformat(),
                "pulled_at": entry.get("pulled_at"),
                "error": message,
                "retry": error.retryable,
            }
    if rows:
        yield rows


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _joined(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or None
    return _text(value)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _whole(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

"""The `braze_sends` dlt source: Braze send analytics (`GET /sends/data_series`) as three tables,
and the campaign dimension (`GET /campaigns/details`).

- `send_variation_daily`: one row per send, day, channel and variation (merge).
- `send_daily`: the day-level totals of each send (merge).
- `sends`: one row per registered pair with its window lifecycle (merge).
- `campaigns`: one row per campaign with registered pairs: name, tags, channels, what each
  conversion event counts (merge; refreshed at most once per `campaigns_refresh_hours`).

Configuration lives under `[sources.braze]` (`SOURCES__BRAZE__...` in the environment); the key
is `api_key` in `.dlt/secrets.toml` or `SOURCES__BRAZE__API_KEY`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any, List, Optional

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource

from braze_sends import warehouse
from braze_sends.campaigns import (
    CAMPAIGNS_TABLE,
    DEFAULT_REFRESH_HOURS,
    CampaignOptions,
    column_hints,
    refresh_campaigns,
)
from braze_sends.capture import CaptureOptions, check_range, run_capture
from braze_sends.client import BrazeClient, RetryPolicy
from braze_sends.errors import ConfigurationError
from braze_sends.ratelimit import RateLimiter
from braze_sends.sends_file import SendPair, pairs_from_config, read_sends_file
from braze_sends.settings import (
    BRAZE_REQUESTS_PER_HOUR,
    DAILY_TABLE,
    DEFAULT_BASE_URL,
    DEFAULT_REQUESTS_PER_HOUR,
    DEFAULT_WORKERS,
    PIPELINE_NAME,
    SOURCE_SECTION,
    VARIATION_TABLE,
)

__all__ = ["SendPair", "braze_sends"]

logger = logging.getLogger(__name__)


@dlt.source(name=PIPELINE_NAME, section=SOURCE_SECTION, max_table_nesting=0, root_key=False)
def braze_sends(
    pairs: Optional[List[Any]] = None,
    sends_file: Optional[str] = None,
    api_key: Optional[TSecretStrValue] = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    timezone: str = "UTC",
    workers: int = DEFAULT_WORKERS,
    requests_per_hour: float = DEFAULT_REQUESTS_PER_HOUR,
    max_requests: Optional[int] = None,
    time_budget: Optional[float] = None,
    final_margin_hours: float = 6.0,
    at_risk_hours: float = 48.0,
    max_attempts: int = 6,
    backoff_seconds: float = 1.0,
    rate_limit_wait: float = 60.0,
    request_timeout: float = 60.0,
    item_format: str = "arrow",
    campaigns: bool = True,
    campaigns_refresh_hours: float = DEFAULT_REFRESH_HOURS,
    now: Optional[datetime] = None,
    session: Optional[Any] = None,
    chunk_pairs: Optional[int] = None,
) -> List[DltResource]:
    """Braze send analytics for every registered campaign/send pair.

    Args:
        pairs: pairs to register: `SendPair`s, or from config `"campaign_id/send_id"` strings or
            tables with `campaign_id`, `send_id`, `sent_at`.
        sends_file: a CSV of pairs to register (`campaign_id,send_id[,sent_at]`).
        api_key: a REST API key with the `sends.data_series` permission (needed only when some
            pair is due: registering pairs needs none).
        base_url: the workspace's REST endpoint.
        timezone: the workspace's time zone (Braze's days follow it).
        workers: requests in flight at once.
        requests_per_hour: this pipeline's share of the workspace pool (Braze: 250,000/hour).
        max_requests, time_budget: limit a run (most urgent sends first); seconds for the budget.
        final_margin_hours: a pull this close to a window's close makes the send final.
        at_risk_hours: warn about sends closing within this many hours without a recent pull.
        max_attempts, backoff_seconds, request_timeout: retry policy of one request (attempts,
            first backoff of the exponential series, read timeout in seconds).
        item_format: "arrow" (fast, default) or "rows" (plain dicts).
        campaigns: load the `campaigns` dimension (the key then also needs `campaigns.details`).
        campaigns_refresh_hours: ask for a campaign's details at most once per this many hours.
        now: the moment the run takes as now (tests and time travel); the real time by default.
        session: a `capture.RunSession` when this source is one chunk of a run (the runner's).
        chunk_pairs: with a session, how many pairs this load takes.

    Returns:
        The `send_data_series` resource, dispatching to the three tables, and the `campaigns`
        resource.
    """
    options = CaptureOptions(
        timezone=timezone,
        workers=workers,
        max_requests=max_requests,
        time_budget=time_budget,
        final_margin_hours=final_margin_hours,
        at_risk_hours=at_risk_hours,
        item_format=item_format,  # type: ignore[arg-type]
    )
    if isinstance(requests_per_hour, bool) or not requests_per_hour > 0:
        raise ConfigurationError(f"requests_per_hour must be > 0, got {requests_per_hour!r}")
    if requests_per_hour > BRAZE_REQUESTS_PER_HOUR:
        logger.warning(
            "requests_per_hour %s is above Braze's documented pool of %s per workspace: "
            "expect 429s unless your contract grants more",
            f"{requests_per_hour:,.0f}",
            f"{BRAZE_REQUESTS_PER_HOUR:,}",
        )
    limits = {
        "max_attempts": (max_attempts, 1, 20),
        "request_timeout": (request_timeout, 0.001, 600),
        "backoff_seconds": (backoff_seconds, 0, 60),
        "rate_limit_wait": (rate_limit_wait, 0, 3600),
    }
    for name, (value, low, high) in limits.items():
        check_range(name, value, low, high)
    if not str(base_url).startswith(("https://", "http://")):
        raise ConfigurationError(
            f"base_url {base_url!r} is not an http(s) URL; use your workspace's REST endpoint, "
            "e.g. https://rest.iad-01.braze.com"
        )
    # A run's later chunks: its first one registered the given pairs (no need to read them again).
    given = [] if session is not None and session.planned else _pairs(pairs, sends_file, options)
    campaign_options = CampaignOptions(
        refresh_hours=campaigns_refresh_hours, workers=workers, enabled=campaigns
    )
    # One request budget for both resources (Braze counts them against one pool), and for every
    # chunk of a run.
    if session is not None and session.client is not None:
        limiter = session.client.limiter
    else:
        limiter = RateLimiter(requests_per_hour, reserve=1)

    def connect() -> BrazeClient:
        if session is not None and session.client is not None:
            return session.client
        return BrazeClient(
            base_url,
            api_key or "",
            retry=RetryPolicy(
                max_attempts=max_attempts,
                backoff_initial=backoff_seconds,
                rate_limit_fallback=rate_limit_wait,
                timeout=(min(10.0, request_timeout), request_timeout),
            ),
            limiter=limiter,
        )

    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))

    @dlt.resource(name="send_data_series", write_disposition="merge")
    def send_data_series():
        """Pulls every due pair and yields rows for the three tables."""
        schema = dlt.current.source_schema()
        stored_types = {
            name: {c: col.get("data_type") for c, col in schema.get_table_columns(name).items()}
            for name in (VARIATION_TABLE, DAILY_TABLE)
            if name in schema.tables
        }
        yield from run_capture(
            connect,
            dlt.current.source_state(),
            given,
            options,
            clock=clock,
            stored_types=stored_types,
            session=session,
            chunk_pairs=chunk_pairs,
            finished_in_warehouse=partial(warehouse.finished_pairs, dlt.current.pipeline()),
        )

    @dlt.resource(
        name=CAMPAIGNS_TABLE,
        write_disposition="merge",
        primary_key="campaign_id",
        columns=column_hints(),
    )
    def campaign_details():
        """Refreshes the metadata of every registered campaign that is due (see `campaigns`)."""
        yield from refresh_campaigns(
            connect,
            dlt.current.source_state(),
            {p.campaign_id for p in given},
            campaign_options,
            clock=clock,
            allowed=max_requests != 0,
        )

    return [send_data_series, campaign_details]


def _pairs(pairs: Optional[List[Any]], sends_file: Optional[str], options: CaptureOptions):
    given: list[SendPair] = []
    if sends_file:
        given.extend(read_sends_file(sends_file, tz=options.tz))
    if pairs:
        plain = [p for p in pairs if not isinstance(p, SendPair)]
        given.extend(p for p in pairs if isinstance(p, SendPair))
        given.extend(pairs_from_config(plain, tz=options.tz))
    return given

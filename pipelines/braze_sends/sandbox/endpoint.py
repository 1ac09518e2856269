"""The sandbox's Braze endpoints as pure functions: auth, parameter validation, catalog lookup.

``GET /sends/data_series`` (``data_series``), ``GET /campaigns/list`` (``campaigns_list``) and
``GET /campaigns/details`` (``campaign_details``). No I/O and no clock read: the server passes the
request's query, its ``Authorization`` header and the sandbox's ``now``, and gets back a status
and a JSON body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from braze_sends.sandbox.catalog import (
    Catalog,
    SendExpiredError,
    UnknownCampaignError,
    UnknownSendError,
)

DEMO_API_KEY = "sandbox-demo-key"
DATA_SERIES_PERMISSION = "sends.data_series"
CAMPAIGNS_LIST_PERMISSION = "campaigns.list"
CAMPAIGNS_DETAILS_PERMISSION = "campaigns.details"
CAMPAIGNS_PAGE_SIZE = 100
ALL_PERMISSIONS = frozenset(
    {
        "sends.data_series",
        "sends.id.create",
        "campaigns.list",
        "campaigns.details",
        "campaigns.data_series",
    }
)
MAX_LENGTH = 100
EXPIRED_MESSAGE = (
    "send analytics are no longer available: Braze keeps them for 14 days after the send"
)

_BEARER = re.compile(r"\s*bearer\s+(.*?)\s*$", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ApiResponse:
    """A status and a JSON body."""

    status: int
    body: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesRequest:
    """Validated parameters of one ``/sends/data_series`` request."""

    campaign_id: str
    send_id: str
    length: int
    ending_at_date: date


class InvalidParameters(ValueError):
    """One or more parameters are invalid; ``errors`` lists what to fix."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def normalize_keys(api_keys: Mapping[str, Iterable[str]] | Iterable[str] | None) -> dict:
    """``key -> frozenset(permissions)``; a plain list of keys gets every permission."""
    if api_keys is None:
        return {DEMO_API_KEY: ALL_PERMISSIONS}
    if isinstance(api_keys, Mapping):
        return {key: frozenset(perms) for key, perms in api_keys.items()}
    return {key: ALL_PERMISSIONS for key in api_keys}


def authenticate(
    authorization: str | None, api_keys: Mapping[str, frozenset[str]], permission: str
) -> ApiResponse | None:
    """None if the key is known and has ``permission``, else the 401/403 answer.

    The 401 message echoes the key as sent, as real Braze does.
    """
    raw = authorization or ""
    match = _BEARER.match(raw)
    key = match.group(1) if match else raw.strip()
    if not match or key not in api_keys:
        return ApiResponse(401, {"message": f"Invalid API key: {key}"})
    if permission not in api_keys[key]:
        return ApiResponse(
            403,
            {
                "message": f"This API key does not have the {permission} permission; "
                "grant it in Settings > APIs and Identifiers",
            },
        )
    return None


def ending_date(raw: str | None, now: datetime, tz: ZoneInfo) -> date:
    """The last day of the series.

    Default: today at ``now``. A datetime ends the series on its date in the workspace time
    zone (no offset = UTC). A date-only value means that date at 00:00 and, as observed on
    real Braze, ends the series the day *before* that date.
    """
    if raw is None:
        return now.astimezone(tz).date()
    text = raw.strip()
    try:
        return date.fromisoformat(text) - timedelta(days=1)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)  # ValueError propagates
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).date()


def parse_series_params(
    query: Mapping[str, Sequence[str]], *, now: datetime, tz: ZoneInfo
) -> SeriesRequest:
    """Validate the query parameters; raises ``InvalidParameters`` listing every problem."""

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    errors: list[str] = []
    campaign_id, send_id = first("campaign_id"), first("send_id")
    if not campaign_id:
        errors.append("campaign_id is required")
    if not send_id:
        errors.append("send_id is required")
    raw_length = first("length")
    length = 0
    if not raw_length:
        errors.append("length is required (an integer between 1 and 100)")
    elif not _DIGITS.fullmatch(raw_length) or not 1 <= int(raw_length) <= MAX_LENGTH:
        errors.append(f"length must be an integer between 1 and 100, got {raw_length!r}")
    else:
        length = int(raw_length)
    raw_end = first("ending_at")
    end = now.astimezone(tz).date()
    try:
        end = ending_date(raw_end, now, tz)
    except (ValueError, OverflowError):
        hint = " (was '+' in the offset URL-encoded as %2B?)" if " " in str(raw_end) else ""
        errors.append(
            f"ending_at must be an ISO-8601 datetime such as 2026-11-20T23:59:59-05:00, "
            f"got {raw_end!r}{hint}"
        )
    if not errors and end.toordinal() < length:
        errors.append(f"ending_at {raw_end!r} is too early for a series of {length} days")
    if errors:
        raise InvalidParameters(errors)
    return SeriesRequest(str(campaign_id), str(send_id), length, end)


def data_series(
    catalog: Catalog,
    query: Mapping[str, Sequence[str]],
    authorization: str | None,
    api_keys: Mapping[str, frozenset[str]],
    now: datetime,
) -> ApiResponse:
    """The answer to ``GET /sends/data_series`` at sandbox time ``now``."""
    denied = authenticate(authorization, api_keys, DATA_SERIES_PERMISSION)
    if denied is not None:
        return denied
    try:
        request = parse_series_params(query, now=now, tz=catalog.tz)
    except InvalidParameters as exc:
        return ApiResponse(400, {"message": str(exc), "errors": exc.errors})
    try:
        data = catalog.series(
            request.campaign_id,
            request.send_id,
            length=request.length,
            ending_at_date=request.ending_at_date,
            as_of=now,
        )
    except UnknownCampaignError:
        return ApiResponse(400, {"message": "Invalid Campaign ID"})
    except UnknownSendError:
        return ApiResponse(400, {"message": "Invalid Send ID"})
    except SendExpiredError:
        return ApiResponse(400, {"message": EXPIRED_MESSAGE})
    return ApiResponse(200, {"message": "success", "data": data})


def _first_param(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _moment(text: str) -> datetime:
    """An ISO-8601 datetime (no offset = UTC); raises ``ValueError``."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def campaigns_list(
    catalog: Catalog,
    query: Mapping[str, Sequence[str]],
    authorization: str | None,
    api_keys: Mapping[str, frozenset[str]],
) -> ApiResponse:
    """The answer to ``GET /campaigns/list``: pages of 100 campaigns, oldest created first.

    Parameters: ``page`` (from 0), ``include_archived`` (default false), ``sort_direction``
    (``asc`` | ``desc``, by creation time), ``last_edit.time[gt]`` (only campaigns edited after).
    """
    denied = authenticate(authorization, api_keys, CAMPAIGNS_LIST_PERMISSION)
    if denied is not None:
        return denied
    errors: list[str] = []
    raw_page = _first_param(query, "page") or "0"
    if not _DIGITS.fullmatch(raw_page):
        errors.append(f"page must be an integer >= 0, got {raw_page!r}")
    raw_archived = (_first_param(query, "include_archived") or "false").lower()
    if raw_archived not in ("true", "false"):
        errors.append(f"include_archived must be true or false, got {raw_archived!r}")
    direction = _first_param(query, "sort_direction") or "asc"
    if direction not in ("asc", "desc"):
        errors.append(f"sort_direction must be asc or desc, got {direction!r}")
    edited_after = None
    raw_edited = _first_param(query, "last_edit.time[gt]")
    if raw_edited:
        try:
            edited_after = _moment(raw_edited)
        except (ValueError, OverflowError):
            errors.append(f"last_edit.time[gt] must be an ISO-8601 datetime, got {raw_edited!r}")
    if errors:
        return ApiResponse(400, {"message": "; ".join(errors), "errors": errors})
    campaigns = [
        c
        for c in catalog.campaigns.values()
        if (raw_archived == "true" or not c.archived)
        and (edited_after is None or c.last_edited > edited_after)
    ]
    campaigns.sort(key=lambda c: (c.created_at, c.id), reverse=direction == "desc")
    start = int(raw_page) * CAMPAIGNS_PAGE_SIZE
    page = campaigns[start : start + CAMPAIGNS_PAGE_SIZE]
    return ApiResponse(200, {"message": "success", "campaigns": [c.list_row() for c in page]})


def campaign_details(
    catalog: Catalog,
    query: Mapping[str, Sequence[str]],
    authorization: str | None,
    api_keys: Mapping[str, frozenset[str]],
    now: datetime,
) -> ApiResponse:
    """The answer to ``GET /campaigns/details?campaign_id=`` at sandbox time ``now``."""
    denied = authenticate(authorization, api_keys, CAMPAIGNS_DETAILS_PERMISSION)
    if denied is not None:
        return denied
    campaign_id = _first_param(query, "campaign_id")
    if not campaign_id:
        errors = ["campaign_id is required"]
        return ApiResponse(400, {"message": errors[0], "errors": errors})
    campaign = catalog.campaigns.get(campaign_id)
    if campaign is None:
        return ApiResponse(400, {"message": "Invalid Campaign ID"})
    sent_at = [at for c, _, at in catalog.pairs() if c == campaign_id and at <= now]
    return ApiResponse(200, campaign.details(sent_at))

"""The Braze HTTP client: one call per pair, its retry policy (tenacity), typed errors.

Where 429s are handled: `RetryPolicy` + `BrazeClient._wait` (wait until `x-ratelimit-reset`,
shared by all workers through the `RateLimiter`). 5xx, timeouts, dropped connections and mangled
bodies are retried with exponential backoff and jitter; 400/401/403/404 never are.

Plain `requests` is used on purpose, not `dlt.sources.helpers.requests`: dlt's session retries on
its own (honouring only `Retry-After`, which Braze does not send), and two retry policies stacked
would multiply. The key is sent only in the `Authorization: Bearer` header.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import requests
import requests.adapters
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from braze_sends import errors
from braze_sends.ratelimit import RateLimiter, RateLimitHeaders
from braze_sends.settings import DATA_SERIES_PATH, DEFAULT_REQUESTS_PER_HOUR

logger = logging.getLogger(__name__)

USER_AGENT = "braze-sends/0.1 (+https://github.com/braze-sends/braze-sends)"
CAMPAIGNS_LIST_PATH = "/campaigns/list"
CAMPAIGN_DETAILS_PATH = "/campaigns/details"
CAMPAIGNS_PAGE_SIZE = 100  # /campaigns/list answers pages of up to 100 rows


@dataclass(frozen=True)
class RetryPolicy:
    """How long one request may keep trying.

    Attributes:
        max_attempts: attempts per request, the first included; 429s don't count.
        max_rate_limited: 429s one request may wait through (each until the reset).
        backoff_initial / backoff_max: exponential backoff for 5xx and transport errors (seconds).
        rate_limit_fallback: wait after a 429 that carries no reset header (seconds).
        max_total_wait: a request gives up rather than sleep past this many seconds in all.
        timeout: (connect, read) seconds for one attempt.
    """

    max_attempts: int = 6
    max_rate_limited: int = 50
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    rate_limit_fallback: float = 60.0
    max_total_wait: float = 3900.0
    timeout: tuple[float, float] = (10.0, 60.0)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if min(self.backoff_initial, self.backoff_max, self.max_total_wait) < 0:
            raise ValueError("retry waits must be >= 0")


@dataclass
class ClientStats:
    """Counters shared by all workers."""

    requests: int = 0
    retries: int = 0
    statuses: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: int | str) -> None:
        with self._lock:
            self.requests += 1
            self.statuses[status] += 1

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1


class BrazeClient:
    """Calls `GET /sends/data_series` for one pair at a time, safely from many threads.

    Args:
        base_url: the workspace's REST endpoint, e.g. https://rest.iad-01.braze.com.
        api_key: a REST API key with the `sends.data_series` permission.
        retry: the retry policy.
        limiter: the request budget shared by all workers.
        sleep / wall: injected for tests (seconds to block; UTC epoch now).
        transport: a `requests` adapter to send through instead of the network (tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        transport: requests.adapters.BaseAdapter | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise errors.ConfigurationError(
                "no Braze API key: set SOURCES__BRAZE__API_KEY or api_key under [sources.braze] "
                "in .dlt/secrets.toml"
            )
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter(DEFAULT_REQUESTS_PER_HOUR, sleep=sleep, wall=wall)
        self.stats = ClientStats()
        self._api_key = api_key.strip()
        self._sleep, self._wall = sleep, wall
        self._transport = transport
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"BrazeClient(base_url={self.base_url!r})"

    def send_data_series(
        self, campaign_id: str, send_id: str, *, length: int, ending_at: datetime
    ) -> list[dict[str, Any]]:
        """The daily series of one pair: `length` days ending on `ending_at`'s date.

        Raises:
            BrazeAPIError: a subclass naming the pair, the status and the fix.
        """
        params = {
            "campaign_id": campaign_id,
            "send_id": send_id,
            "length": str(length),
            "ending_at": ending_at.isoformat(timespec="seconds"),
        }
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, errors.BrazeAPIError) and e.retryable),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        body = retrying(self._get, DATA_SERIES_PATH, params, (campaign_id, send_id))
        return body["data"]

    def campaign_details(self, campaign_id: str) -> dict[str, Any]:
        """One campaign's metadata (`GET /campaigns/details`): name, tags, channels, messages,
        `conversion_behaviors`, ... as Braze answers it. Same retry policy as the series.

        Raises:
            BrazeAPIError: a subclass naming the campaign and the status (the key needs the
                `campaigns.details` permission).
        """
        params = {"campaign_id": campaign_id}
        who = {"campaign_id": campaign_id}
        return self._retrying()(self._get_object, CAMPAIGN_DETAILS_PATH, params, who, "name")

    def campaigns_list(
        self,
        *,
        include_archived: bool = False,
        sort_direction: str = "asc",
        last_edited_after: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every campaign (`GET /campaigns/list`, pages of 100 from page 0): `id`, `name`,
        `is_api_campaign`, `tags`, `last_edited`.

        Args:
            include_archived: list archived campaigns too.
            sort_direction: "asc" (oldest created first) or "desc".
            last_edited_after: only campaigns edited after this moment.

        Raises:
            BrazeAPIError: a subclass naming the status (the key needs `campaigns.list`).
        """
        params = {
            "include_archived": "true" if include_archived else "false",
            "sort_direction": sort_direction,
        }
        if last_edited_after is not None:
            params["last_edit.time[gt]"] = last_edited_after.isoformat(timespec="seconds")
        page = 0
        while True:
            params["page"] = str(page)
            body = self._retrying()(
                self._get_object, CAMPAIGNS_LIST_PATH, dict(params), {}, "campaigns"
            )
            rows = body["campaigns"]
            if not isinstance(rows, list):
                raise errors.UnexpectedResponseError(
                    f"200 whose `campaigns` is not a list (page {page})", status=200
                )
            yield from rows
            if len(rows) < CAMPAIGNS_PAGE_SIZE:
                return
            page += 1

    def _retrying(self) -> Retrying:
        """The retry policy of one request (the same for every endpoint)."""
        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, errors.BrazeAPIError) and e.retryable),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    # -- one attempt ------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self._api_key}"
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept"] = "application/json"
            session.trust_env = False  # no netrc: the key must only come from our header
            if self._transport is not None:
                session.mount("http://", self._transport)
                session.mount("https://", self._transport)
            self._local.session = session
        return session

    def _get(self, path: str, params: dict[str, str], pair: tuple[str, str]) -> dict[str, Any]:
        """One attempt at `/sends/data_series`: a JSON object whose `data` is a list."""
        who = {"campaign_id": pair[0], "send_id": pair[1]}
        response = self._attempt(path, params, who)
        body = self._json(response, who)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise errors.UnexpectedResponseError(
                f"200 without a `data` list: {self._snippet(response)}", status=200, **who
            )
        return body

    def _get_object(
        self, path: str, params: dict[str, str], who: dict[str, str], required: str
    ) -> dict[str, Any]:
        """One attempt at a JSON object answer carrying the key `required` (campaign endpoints)."""
        response = self._attempt(path, params, who)
        body = self._json(response, who)
        if not isinstance(body, dict) or required not in body:
            raise errors.UnexpectedResponseError(
                f"200 without `{required}`: {self._snippet(response)}", status=200, **who
            )
        return body

    def _attempt(self, path: str, params: dict[str, str], who: dict[str, str]) -> requests.Response:
        """One paced GET: its `200` response, or the typed error of its failure."""
        self.limiter.acquire()
        try:
            response = self._session().get(
                self.base_url + path, params=params, timeout=self.retry.timeout
            )
        except requests.Timeout as exc:
            self.stats.count("timeout")
            raise errors.TransportError(f"timed out ({type(exc).__name__})", **who) from None
        except requests.RequestException as exc:
            self.stats.count("connection")
            detail = errors.redact(f"{type(exc).__name__}: {_short(str(exc))}", self._api_key)
            raise errors.TransportError(detail, **who) from None
        finally:
            self.limiter.done()  # before `observe`: the count it reads includes this request
        self.stats.count(response.status_code)
        logger.debug(
            "%s %s: HTTP %d in %.3f s",
            path,
            params,
            response.status_code,
            response.elapsed.total_seconds(),
        )
        self.limiter.observe(RateLimitHeaders.parse(response.headers))
        if response.status_code != 200:
            raise self._error_for(response, who)
        return response

    def _json(self, response: requests.Response, who: dict[str, str]) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass  # what orjson refuses and requests' parser may take (integers past 64 bits)
        try:
            return response.json()
        except ValueError:
            raise errors.UnexpectedResponseError(
                f"200 whose body is not JSON: {self._snippet(response)}", status=200, **who
            ) from None

    def _error_for(self, response: requests.Response, who: dict[str, str]) -> errors.BrazeAPIError:
        status = response.status_code
        detail = self._snippet(response)
        if status == 401:
            return errors.AuthenticationError(detail, status=status, **who)
        if status == 403:
            return errors.PermissionDeniedError(detail, status=status, **who)
        if status == 404:
            return errors.NotFoundError(f"{detail} at {response.url.split('?')[0]}", status=status)
        if status == 429:
            reset_at = RateLimitHeaders.parse(response.headers).reset_at
            return errors.RateLimitedError(detail, reset_at=reset_at, status=status, **who)
        if 400 <= status < 500:
            return errors.BadRequestError(detail, status=status, **who)
        return errors.ServerError(detail, status=status, **who)

    def _snippet(self, response: requests.Response) -> str:
        """What the server said, short and without the key."""
        try:
            body = response.json()
            message = body.get("message") if isinstance(body, dict) else None
            text = repr(message) if message else _short(response.text)
        except ValueError:
            content_type = response.headers.get("Content-Type", "")
            prefix = "an HTML page (a proxy?): " if "html" in content_type.lower() else ""
            text = prefix + _short(response.text)
        return errors.redact(text, self._api_key)

    # -- retry policy -----------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, errors.RateLimitedError):
            state.rate_limited = getattr(state, "rate_limited", 0) + 1  # read by `_stop`
            return self.limiter.pause_until_reset(exc.reset_at, self.retry.rate_limit_fallback)
        backoff = wait_exponential_jitter(
            multiplier=self.retry.backoff_initial,
            max=self.retry.backoff_max,
            jitter=self.retry.backoff_initial,
        )
        return backoff(state)

    def _stop(self, state: RetryCallState) -> bool:
        # A 429 says "come back at the reset": it is bounded by the total wait (and a high cap),
        # not by the attempts meant for failures (5xx, timeouts, dropped connections).
        rate_limited = getattr(state, "rate_limited", 0)
        if state.attempt_number - rate_limited >= self.retry.max_attempts:
            return True
        if rate_limited >= self.retry.max_rate_limited:
            return True
        return state.idle_for + state.upcoming_sleep > self.retry.max_total_wait

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.count_retry()
        exc = state.outcome.exception() if state.outcome else None
        logger.info(
            "retrying in %.1fs (attempt %d of %d): %s",
            state.upcoming_sleep,
            state.attempt_number + 1,
            self.retry.max_attempts,
            exc,
        )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

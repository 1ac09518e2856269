"""Typed errors: one class per way a pull can fail, each message naming the pair, the status and the fix.

The API key never appears in any of these messages: `redact` removes it from anything a server
echoes back (Braze echoes a rejected key in its 401 body).
"""

from __future__ import annotations

from typing import Any


class BrazeSendsError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigurationError(BrazeSendsError):
    """A setting, option or input file is wrong; nothing was requested or loaded because of it."""


class SendsFileError(ConfigurationError):
    """The sends file cannot be read or has invalid rows."""


class RunLockedError(BrazeSendsError):
    """Another run of the same pipeline holds the lock."""


class DestinationError(BrazeSendsError):
    """The destination could not be read when the run needed it (nothing was loaded then)."""


class BrazeAPIError(BrazeSendsError):
    """A request to Braze failed.

    Attributes:
        campaign_id, send_id: the pair the request was for (None for requests not about a pair).
        status: the HTTP status, or None when no response arrived.
        retryable: whether waiting and asking again may succeed.
        stops_run: whether the failure concerns every pair (bad key, wrong URL), so the run stops.
    """

    retryable = False
    stops_run = False
    fix = ""

    def __init__(
        self,
        detail: str,
        *,
        campaign_id: str | None = None,
        send_id: str | None = None,
        status: int | None = None,
    ) -> None:
        self.detail = detail
        self.campaign_id = campaign_id
        self.send_id = send_id
        self.status = status
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.campaign_id is not None or self.send_id is not None:
            parts.append(f"campaign_id={self.campaign_id!r} send_id={self.send_id!r}:")
        parts.append(f"HTTP {self.status}:" if self.status is not None else "no response:")
        parts.append(self.detail)
        if self.fix:
            parts.append(f"({self.fix})")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword arguments when pickled (dlt pickles exceptions into its traces).
        return (_rebuild, (type(self), self.detail, self.campaign_id, self.send_id, self.status))


def _rebuild(cls: type[BrazeAPIError], detail: str, campaign_id: Any, send_id: Any, status: Any):
    return cls(detail, campaign_id=campaign_id, send_id=send_id, status=status)


class AuthenticationError(BrazeAPIError):
    """401: the key is unknown, missing, or belongs to another Braze instance."""

    stops_run = True
    fix = (
        "check SOURCES__BRAZE__API_KEY (or api_key in .dlt/secrets.toml) is a REST API key of "
        "this workspace, and that base_url is the workspace's REST endpoint: a key used against "
        "another instance gets 401"
    )


class PermissionDeniedError(BrazeAPIError):
    """403: the key lacks the `sends.data_series` permission, or the plan does not allow it."""

    stops_run = True
    fix = (
        "check the key has the `sends.data_series` permission (Braze dashboard > Settings > "
        "APIs and Identifiers > API Keys)"
    )


class NotFoundError(BrazeAPIError):
    """404: the URL is wrong, which means base_url is not a Braze REST endpoint."""

    stops_run = True
    fix = "check base_url is your instance's REST endpoint, e.g. https://rest.iad-01.braze.com"


class BadRequestError(BrazeAPIError):
    """400 (or another 4xx): Braze refused this pair's request; asking again will not help."""

    fix = (
        "check the campaign_id and send_id: the campaign must be an API campaign and the send id "
        "must belong to it"
    )


class RateLimitedError(BrazeAPIError):
    """429: the workspace's shared request pool is used up until its reset time."""

    retryable = True
    fix = "the pool resets at the top of the hour; lower requests_per_hour if other tools share it"

    def __init__(self, detail: str, *, reset_at: float | None = None, **kwargs: Any) -> None:
        self.reset_at = reset_at
        super().__init__(detail, **kwargs)


class ServerError(BrazeAPIError):
    """5xx: Braze (or a proxy in front of it) failed; retried with backoff."""

    retryable = True


class TransportError(BrazeAPIError):
    """No usable response: timeout, refused or dropped connection, truncated body."""

    retryable = True
    fix = "check base_url and the network; the pull is retried on the next run"


class UnexpectedResponseError(BrazeAPIError):
    """A 200 whose body is not the documented shape. Retried: a proxy may have mangled it."""

    retryable = True


def redact(text: str, secret: str | None) -> str:
    """Remove `secret` from `text` (a server may echo the key back in an error body)."""
    if secret and len(secret) >= 4 and secret in text:  # a 1-character "key" would mangle text
        text = text.replace(secret, "***")
    return text

"""Fault injection: which request fails, how, and how long it takes (pure and deterministic).

Each decision is a hash of ``(seed, campaign_id, send_id, attempt)``, where ``attempt`` is the
n-th request for that pair (counted by the server). No shared RNG is involved, so a given seed
gives every pair the same sequence of outcomes whatever the thread interleaving.

Fault kinds:

- ``status``: an error status with a JSON ``message`` (5xx; 429 for spurious throttling, as when
  other tools drain the shared pool).
- ``drop``: the connection is closed without a response (``before_headers``) or after the
  headers and part of the body (``mid_body``).
- ``malformed``: ``truncated_json`` (half of the JSON body), ``html_proxy_page`` (a 502 HTML page
  from a proxy), ``wrong_shape`` (a 200 whose JSON lacks ``data``, has a non-list ``data``, or a
  day without ``time``).
- a ``delay`` (slow response) can accompany any outcome.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

DEFAULT_STATUSES = (500, 502, 503, 504)
DROP_MODES = ("before_headers", "mid_body")
MALFORMED_KINDS = ("truncated_json", "html_proxy_page", "wrong_shape")
WRONG_SHAPES = ("data_missing", "data_not_list", "day_without_time")

PROXY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    """What to do to one request (``kind="none"``: answer normally)."""

    kind: str = "none"  # "none" | "status" | "drop" | "malformed"
    status: int = 200  # for kind "status"
    variant: str = ""  # drop mode, or malformed kind ("wrong_shape:<shape>")
    delay: float = 0.0  # extra seconds before answering


NO_FAULT = Fault()


def unit(seed: int, purpose: str, campaign_id: str | None, send_id: str | None, n: int) -> float:
    """A uniform number in [0, 1) from a hash of its arguments."""
    text = f"{seed}|{purpose}|{campaign_id}|{send_id}|{n}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Faults:
    """Random fault rates (each a probability per request) under a seed."""

    seed: int = 0
    error_rate: float = 0.0
    statuses: tuple[int, ...] = DEFAULT_STATUSES
    throttle_rate: float = 0.0  # spurious 429s
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    drop_rate: float = 0.0
    drop_mode: str = "before_headers"  # or "mid_body", or "mixed"
    malformed_rate: float = 0.0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", tuple(int(s) for s in self.statuses))
        object.__setattr__(self, "malformed_kinds", tuple(self.malformed_kinds))
        rates = (
            self.error_rate,
            self.throttle_rate,
            self.slow_rate,
            self.drop_rate,
            self.malformed_rate,
        )
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("fault rates must be within 0..1")
        if self.error_rate + self.throttle_rate + self.drop_rate + self.malformed_rate > 1.0:
            raise ValueError("error_rate + throttle_rate + drop_rate + malformed_rate must be <= 1")
        if self.error_rate and not self.statuses:
            raise ValueError("error_rate needs at least one status")
        if self.drop_mode not in (*DROP_MODES, "mixed"):
            raise ValueError(f"drop_mode must be one of {DROP_MODES} or 'mixed'")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown or (self.malformed_rate and not self.malformed_kinds):
            raise ValueError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Faults:
        """Build from JSON-like data (lists allowed for the tuples); unknown keys are errors."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def decide(self, campaign_id: str | None, send_id: str | None, attempt: int) -> Fault:
        """The fault for the ``attempt``-th request (from 1) for a pair."""
        args = (campaign_id, send_id, attempt)
        slow = unit(self.seed, "slow", *args) < self.slow_rate
        delay = self.slow_seconds if slow else 0.0
        draw, pick = unit(self.seed, "fault", *args), unit(self.seed, "pick", *args)
        edge = self.drop_rate
        if draw < edge:
            mode = self.drop_mode if self.drop_mode != "mixed" else DROP_MODES[int(pick * 2)]
            return Fault("drop", variant=mode, delay=delay)
        edge += self.error_rate
        if draw < edge:
            status = self.statuses[int(pick * len(self.statuses))]
            return Fault("status", status=status, delay=delay)
        edge += self.malformed_rate
        if draw < edge:
            kind = self.malformed_kinds[int(pick * len(self.malformed_kinds))]
            if kind == "wrong_shape":
                shape = WRONG_SHAPES[int(unit(self.seed, "shape", *args) * len(WRONG_SHAPES))]
                kind = f"wrong_shape:{shape}"
            return Fault("malformed", variant=kind, delay=delay)
        edge += self.throttle_rate
        if draw < edge:
            return Fault("status", status=429, delay=delay)
        return Fault(delay=delay) if delay else NO_FAULT


def latency_for(
    bounds: tuple[float, float],
    seed: int,
    campaign_id: str | None,
    send_id: str | None,
    attempt: int,
) -> float:
    """Deterministic latency within ``bounds`` (seconds) for the n-th request of a pair."""
    low, high = bounds
    return low + (high - low) * unit(seed, "latency", campaign_id, send_id, attempt)


def parse_step(step: int | str | Fault, slow_seconds: float = 2.0) -> Fault:
    """A scripted step: a status (``503``, ``429``; ``200`` = normal), ``"ok"``, ``"drop"``
    (``"drop:before_headers"``), ``"drop_mid_body"`` (``"drop:mid_body"``), ``"truncated_json"``,
    ``"html_proxy_page"``, ``"wrong_shape"`` (``"wrong_shape:<shape>"``, shapes
    ``data_missing`` (default), ``data_not_list``, ``day_without_time``), ``"slow"`` or
    ``"slow:<seconds>"`` (delay, then a normal answer), or a ``Fault``."""
    if isinstance(step, Fault):
        return step
    if isinstance(step, int) or (isinstance(step, str) and step.isdigit()):
        status = int(step)
        if not 100 <= status <= 599:
            raise ValueError(f"invalid scripted status {status}")
        return NO_FAULT if status == 200 else Fault("status", status=status)
    name, _, arg = str(step).partition(":")
    if name == "ok":
        return NO_FAULT
    if name == "drop":
        mode = arg or "before_headers"
        if mode not in DROP_MODES:
            raise ValueError(f"drop mode must be one of {DROP_MODES}")
        return Fault("drop", variant=mode)
    if name == "drop_mid_body":
        return Fault("drop", variant="mid_body")
    if name in ("truncated_json", "html_proxy_page") and not arg:
        return Fault("malformed", variant=name)
    if name == "wrong_shape":
        shape = arg or WRONG_SHAPES[0]
        if shape not in WRONG_SHAPES:
            raise ValueError(f"wrong_shape must be one of {WRONG_SHAPES}")
        return Fault("malformed", variant=f"wrong_shape:{shape}")
    if name == "slow":
        return Fault(delay=float(arg) if arg else slow_seconds)
    raise ValueError(f"unknown scripted fault {step!r}")


def malformed_body(variant: str, status: int, body: dict) -> tuple[int, str, bytes]:
    """``(status, content type, body)`` of a malformed answer built from the normal ``body``."""
    if variant == "html_proxy_page":
        return 502, "text/html; charset=utf-8", PROXY_PAGE.encode()
    if variant == "truncated_json":
        encoded = json.dumps(body).encode()
        return status, "application/json", encoded[: max(1, len(encoded) // 2)]
    shape = variant.partition(":")[2] or WRONG_SHAPES[0]
    data = body.get("data") if isinstance(body.get("data"), list) else []
    if shape == "data_missing":
        wrong: dict = {"message": "success"}
    elif shape == "data_not_list":
        wrong = {"message": "success", "data": {day.get("time", "?"): day for day in data}}
    else:
        days = [dict(day) for day in data] or [{"messages": {}}]
        days[0].pop("time", None)
        wrong = {"message": "success", "data": days}
    return 200, "application/json", json.dumps(wrong).encode()

"""The sandbox's HTTP layer: a local server that answers like Braze's ``/sends/data_series``,
``/campaigns/list`` and ``/campaigns/details``.

Thin on purpose: the answers themselves come from ``endpoint`` (auth, validation, catalog), the
rate limit (one budget for all three endpoints, as on Braze) from ``ratelimit``, fault decisions
from ``faults``. This module only counts, sleeps, breaks connections and writes bytes.

Admin endpoints (no auth, no rate limit, not counted) for a sandbox run in another process:

- ``GET /_sandbox/stats``; ``POST /_sandbox/stats/reset``
- ``GET|POST /_sandbox/clock``: ``{"now": iso}`` | ``{"advance_seconds": n}`` | ``{"freeze": bool}``
- ``GET|POST /_sandbox/faults``: the ``Faults`` fields as JSON (replaces the current faults)
- ``POST /_sandbox/retention``: ``{"mode": "zeros"|"empty"|"error", "campaign_id"?, "send_id"?}``
- ``POST /_sandbox/script``: ``{"campaign_id"?, "send_id"?, "steps": [503, "drop", ...]}``, or
  ``{"path": "/campaigns/details", "campaign_id"?, "steps": [...]}`` for the campaign endpoints
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from braze_sends.sandbox.catalog import Catalog
from braze_sends.sandbox.clock import SandboxClock
from braze_sends.sandbox.endpoint import (
    ApiResponse,
    campaign_details,
    campaigns_list,
    data_series,
    normalize_keys,
)
from braze_sends.sandbox.faults import (
    Fault,
    Faults,
    latency_for,
    malformed_body,
    parse_step,
)
from braze_sends.sandbox.ratelimit import FixedWindowLimiter, RateLimit, RateLimitState
from braze_sends.sandbox.stats import SandboxStats

logger = logging.getLogger(__name__)

DATA_SERIES_PATH = "/sends/data_series"
CAMPAIGNS_LIST_PATH = "/campaigns/list"
CAMPAIGN_DETAILS_PATH = "/campaigns/details"
API_PATHS = (DATA_SERIES_PATH, CAMPAIGNS_LIST_PATH, CAMPAIGN_DETAILS_PATH)
ANY_CAMPAIGN = "*"
ADMIN_PREFIX = "/_sandbox/"
JSON = "application/json"
_SECRET_PARAM = re.compile(r"(api_key=)[^&\s]*", re.IGNORECASE)

Pair = tuple[str, str]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    sandbox: SandboxServer

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("connection error with %s: %r", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BrazeSandbox/1.0"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    server: _HTTPServer
    responded = False  # whether the status line of an answer went out
    count: Callable[[int | str], None] | None = None  # counts the request in the stats, once

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self.server.sandbox._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.sandbox._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.sandbox._dispatch(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.sandbox._dispatch(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.sandbox._dispatch(self, "DELETE")

    def do_HEAD(self) -> None:
        self.server.sandbox._dispatch(self, "HEAD")

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), _SECRET_PARAM.sub(r"\1***", format % args))


class SandboxServer:
    """A local Braze API sandbox serving ``catalog`` (use as a context manager, or
    ``start()``/``stop()``, or ``serve_forever()``)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: SandboxClock | None = None,
        api_keys: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
        rate_limit: RateLimit | None = None,
        faults: Faults | None = None,
        latency: tuple[float, float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if latency is not None and not 0 <= latency[0] <= latency[1]:
            raise ValueError("latency must be (min_s, max_s) with 0 <= min_s <= max_s")
        self.catalog = catalog
        self.clock = clock or SandboxClock()
        self.api_keys = normalize_keys(api_keys)
        self.latency = latency
        self.stats = SandboxStats()
        self._limiter = FixedWindowLimiter(rate_limit or RateLimit())
        self._faults = faults or Faults()
        self._lock = threading.Lock()
        self._attempts: Counter[Pair] = Counter()
        self._scripts: dict[Pair | None, deque[Fault]] = {}
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.sandbox = self
        self._thread: threading.Thread | None = None
        self._serving = False

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve in a background (daemon) thread."""
        if self._serving:
            return self
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="braze-sandbox",
            daemon=True,
        )
        self._thread.start()
        logger.info("Braze sandbox listening on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread."""
        if self._serving:
            raise RuntimeError("the sandbox is already serving")
        self._serving = True
        logger.info("Braze sandbox listening on %s", self.url)
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self._serving = False

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._serving:
            self._httpd.shutdown()
            if self._thread is not None:
                self._thread.join()
            self._serving = False
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- runtime controls ----------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Swap the random faults; per-pair attempt counters restart from 1."""
        with self._lock:
            self._faults = faults
            self._attempts.clear()

    @property
    def rate_limit(self) -> RateLimit:
        return self._limiter.config

    @rate_limit.setter
    def rate_limit(self, config: RateLimit) -> None:
        self._limiter = FixedWindowLimiter(config)

    def script(self, campaign_id: str, send_id: str, steps: Sequence[int | str | Fault]) -> None:
        """Queue faults for a pair, consumed one per request (then normal behaviour).

        Steps are parsed by ``faults.parse_step``: ``503``, ``429``, ``"drop"``,
        ``"drop_mid_body"``, ``"truncated_json"``, ``"html_proxy_page"``, ``"wrong_shape"``,
        ``"slow:0.5"``, ``"ok"``...
        """
        self._queue((campaign_id, send_id), steps)

    def script_all(self, steps: Sequence[int | str | Fault]) -> None:
        """Queue faults for the next ``/sends/data_series`` requests of any pair (after that
        pair's own script)."""
        self._queue(None, steps)

    def script_endpoint(
        self, path: str, steps: Sequence[int | str | Fault], *, campaign_id: str | None = None
    ) -> None:
        """Queue faults for the next requests to a campaign endpoint (``/campaigns/list``,
        ``/campaigns/details``), for one ``campaign_id`` or any (after that campaign's own)."""
        if path not in (CAMPAIGNS_LIST_PATH, CAMPAIGN_DETAILS_PATH):
            raise ValueError(f"script_endpoint is for the campaign endpoints, not {path!r}")
        self._queue((path, campaign_id or ANY_CAMPAIGN), steps)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def _queue(self, key: Pair | None, steps: Sequence[int | str | Fault]) -> None:
        parsed = [parse_step(step, self._faults.slow_seconds) for step in steps]
        with self._lock:
            self._scripts.setdefault(key, deque()).extend(parsed)

    def _next_fault(self, pair: Pair) -> tuple[int, Faults, Fault]:
        """The fault for a request: ``pair`` is ``(campaign_id, send_id)`` for the series,
        ``(path, campaign_id or "")`` for the campaign endpoints."""
        fallback = (pair[0], ANY_CAMPAIGN) if pair[0] in API_PATHS else None
        with self._lock:
            self._attempts[pair] += 1
            attempt, faults = self._attempts[pair], self._faults
            for key in (pair, fallback):
                queue = self._scripts.get(key)
                if queue:
                    return attempt, faults, queue.popleft()
        return attempt, faults, faults.decide(pair[0], pair[1], attempt)

    # ---- request handling ----------------------------------------------------------------

    def _dispatch(self, handler: _Handler, method: str) -> None:
        handler.responded, handler.count = False, None
        try:
            self._route(handler, method)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("the client closed the connection before the answer")
            handler.close_connection = True
        except Exception:
            logger.exception(
                "the sandbox failed to answer %s %s", method, urlsplit(handler.path).path
            )
            handler.close_connection = True
            if not handler.responded:
                handler.count = None
                self.stats.record(time.time(), urlsplit(handler.path).path, {}, 500, None)
                body = json.dumps({"message": "Internal Server Error"}).encode()
                self._write(handler, 500, body, JSON, {}, method=method)

    def _route(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if url.path.startswith(ADMIN_PREFIX):
            status, payload = self._admin(method, url.path, body)
            self._write(handler, status, json.dumps(payload).encode(), JSON, {}, method=method)
            return
        params = {k: v[0] for k, v in query.items() if k.lower() != "api_key"}
        campaign_id, send_id = params.get("campaign_id"), params.get("send_id")
        pair = (campaign_id, send_id) if url.path == DATA_SERIES_PATH else None

        def count(status: int | str) -> None:
            self.stats.record(
                time.time(), url.path, params, status, pair if campaign_id and send_id else None
            )

        # Counted as the answer goes out, not after: a client that has its answer finds it
        # counted (tests read the stats right after a request).
        handler.count = count
        status = self._api(handler, method, url.path, query)
        if handler.count is not None:  # nothing was written (a dropped connection)
            handler.count(status)
            handler.count = None

    def _api(self, handler: _Handler, method: str, path: str, query: dict) -> int | str:
        """Answer a Braze API request; returns the status sent (or "drop")."""
        state = self._limiter.hit()
        send_reset = self._limiter.config.send_reset
        if not state.allowed:
            return self._throttled(handler, state, send_reset, method)
        if path not in API_PATHS:
            return self._json(handler, 404, {"message": "Not found"}, state.headers(), method)
        if method != "GET":
            headers = {**state.headers(), "Allow": "GET"}
            return self._json(handler, 405, {"message": "Method not allowed"}, headers, method)
        if path == DATA_SERIES_PATH:
            pair = (_first(query, "campaign_id"), _first(query, "send_id"))
        else:
            pair = (path, _first(query, "campaign_id"))
        attempt, faults, fault = self._next_fault(pair)
        delay = fault.delay
        if self.latency is not None:
            delay += latency_for(self.latency, faults.seed, *pair, attempt)
        if delay:
            time.sleep(delay)
        if fault.kind == "status" and fault.status == 429:
            return self._throttled(handler, state, send_reset, method)
        if fault.kind == "status":
            message = _phrase(fault.status)
            return self._json(handler, fault.status, {"message": message}, state.headers(), method)
        if fault.kind == "drop" and fault.variant == "before_headers":
            handler.close_connection = True
            return "drop"
        response = self._answer(path, query, handler.headers.get("Authorization"))
        status, content_type, headers = response.status, JSON, state.headers()
        if fault.kind == "malformed":
            status, content_type, payload = malformed_body(fault.variant, status, response.body)
            if fault.variant == "html_proxy_page":
                headers = {}  # a proxy in front of Braze answered, not Braze
        else:
            payload = json.dumps(response.body, separators=(",", ":")).encode()
        cut = fault.kind == "drop"  # mid_body
        self._write(handler, status, payload, content_type, headers, method=method, cut=cut)
        return "drop" if cut else status

    def _answer(self, path: str, query: dict, authorization: str | None) -> ApiResponse:
        if path == CAMPAIGNS_LIST_PATH:
            return campaigns_list(self.catalog, query, authorization, self.api_keys)
        if path == CAMPAIGN_DETAILS_PATH:
            now = self.clock.now()
            return campaign_details(self.catalog, query, authorization, self.api_keys, now)
        return data_series(self.catalog, query, authorization, self.api_keys, self.clock.now())

    def _throttled(
        self, handler: _Handler, state: RateLimitState, send_reset: bool, method: str
    ) -> int:
        headers = state.headers(throttled=True, send_reset=send_reset)
        return self._json(handler, 429, {"message": "API rate limit exceeded"}, headers, method)

    def _json(self, handler: _Handler, status: int, body: dict, headers: dict, method: str) -> int:
        self._write(handler, status, json.dumps(body).encode(), JSON, headers, method=method)
        return status

    @staticmethod
    def _write(
        handler: _Handler,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str],
        *,
        method: str,
        cut: bool = False,
    ) -> None:
        handler.responded = True
        count, handler.count = handler.count, None
        if count is not None:
            count("drop" if cut else status)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(payload[: len(payload) // 2] if cut else payload)
        if cut:  # close after part of the body, as a dropped connection would
            handler.wfile.flush()
            handler.close_connection = True

    # ---- admin ---------------------------------------------------------------------------

    def _admin(self, method: str, path: str, raw: bytes) -> tuple[int, dict]:
        route = path[len(ADMIN_PREFIX) :].rstrip("/")
        routes = {
            "stats": ("GET",),
            "stats/reset": ("POST",),
            "clock": ("GET", "POST"),
            "faults": ("GET", "POST"),
            "retention": ("GET", "POST"),
            "script": ("POST",),
        }
        if route not in routes:
            return 404, {"message": "Not found"}
        if method not in routes[route]:
            return 405, {"message": "Method not allowed"}
        try:
            data = json.loads(raw) if raw.strip() else {}
            if not isinstance(data, dict):
                raise TypeError("the body must be a JSON object")
            return 200, self._admin_action(method, route, data)
        except (ValueError, TypeError, LookupError) as exc:
            return 400, {"message": f"{type(exc).__name__}: {exc}"}

    def _admin_action(self, method: str, route: str, data: dict) -> dict:
        if route == "stats":
            return self.stats.snapshot()
        if route == "stats/reset":
            self.stats.reset()
            return {"message": "success"}
        if route == "clock":
            if method == "POST":
                self._set_clock(data)
            return {"now": self.clock.now().isoformat(), "frozen": self.clock.frozen}
        if route == "faults":
            if method == "POST":
                self.faults = Faults.from_dict(data)
            return self.faults.to_dict()
        if route == "retention":
            if method == "POST":
                self.catalog.set_retention(
                    data["mode"], data.get("campaign_id"), data.get("send_id")
                )
            return {"mode": self.catalog.retention}
        steps = data["steps"]
        if data.get("path") not in (None, DATA_SERIES_PATH):
            self.script_endpoint(data["path"], steps, campaign_id=data.get("campaign_id"))
        elif data.get("campaign_id") is None and data.get("send_id") is None:
            self.script_all(steps)
        else:
            self.script(data["campaign_id"], data["send_id"], steps)
        return {"message": "success"}

    def _set_clock(self, data: dict) -> None:
        if "now" in data:
            moment = datetime.fromisoformat(data["now"])
            if moment.tzinfo is None:  # like ending_at: no offset means UTC
                moment = moment.replace(tzinfo=UTC)
            self.clock.set(moment)
        if "advance_seconds" in data:
            self.clock.advance(timedelta(seconds=float(data["advance_seconds"])))
        if "freeze" in data:
            (self.clock.freeze if data["freeze"] else self.clock.unfreeze)()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _first(query: Mapping[str, Sequence[str]], name: str) -> str:
    values = query.get(name)
    return values[0] if values else ""

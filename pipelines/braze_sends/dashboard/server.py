"""The dashboard's local web server: `make dashboard` (`python -m braze_sends.dashboard`).

Serves one page on 127.0.0.1 (the query string selects campaign, send and metric) and plotly's
JavaScript bundle from the installed `plotly` package, so it works without any network. Each
request reads the DuckDB file read-only and lets go of it before answering.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlsplit

from braze_sends.dashboard import charts, page
from braze_sends.dashboard.data import (
    DAILY_METRICS,
    VARIATION_RATES,
    Selection,
    Store,
    StoreBusy,
    StoreMissing,
    open_store,
)

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8050
DEFAULT_METRIC = "sent"
HTML = "text/html; charset=utf-8"


@cache
def plotly_js() -> bytes:
    """plotly.js as bundled in the `plotly` package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def build_page(store: Store, query: dict[str, str], *, db: str, now: datetime) -> str:
    """The page for a query string (`campaign`, `send`, `metric`); bad values fall back."""
    campaigns = store.campaigns()
    status_counts = store.status_counts()
    if not campaigns:
        return page.message(
            "Nothing loaded yet", f"{db} has no send data yet: run `make demo` or a pipeline run."
        )
    ids = [c.campaign_id for c in campaigns]
    campaign_id = query.get("campaign") if query.get("campaign") in ids else ids[0]
    sends = store.sends(campaign_id)
    send_id = query.get("send") if query.get("send") in {s["send_id"] for s in sends} else None
    metric = query.get("metric") if query.get("metric") in DAILY_METRICS else DEFAULT_METRIC
    selection = Selection(campaign_id, send_id, metric)
    labels = store.labels(campaign_id)
    subject = f"send {send_id}" if send_id else "all sends"
    title = charts.metric_title(metric, labels)
    figures = {
        "chart-daily": charts.daily_series(
            store.daily(selection), metric, f"Daily {title} by channel ({subject})"
        ),
        "chart-variations": charts.variation_rates(
            store.variations(selection),
            VARIATION_RATES,
            f"Rates by variation, control group included ({subject})",
        ),
    }
    live = store.live_sends(now)
    if live:
        figures["chart-windows"] = charts.window_status(live, now)
    return page.render(
        page.PageData(
            db=db,
            now=now,
            loaded_at=store.loaded_at(),
            status_counts=status_counts,
            campaigns=campaigns,
            sends=sends,
            selection=selection,
            labels=labels,
            charts=figures,
            live=live,
        )
    )


class _Handler(BaseHTTPRequestHandler):
    server_version = "braze-sends-dashboard"
    server: _HTTPServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == page.PLOTLY_JS_PATH:
            headers = {"Cache-Control": "max-age=86400"}
            self._send(200, plotly_js(), "application/javascript", headers)
            return
        if url.path not in ("/", "/index.html"):
            self._send(404, page.message("Not found", url.path).encode(), HTML)
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, body = self.server.dashboard.answer(query)
        self._send(status, body.encode(), HTML)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    dashboard: Dashboard


class Dashboard:
    """The dashboard of one DuckDB file (use as a context manager, or `serve_forever()`).

    Args:
        db: the DuckDB file (read-only).
        host, port: where to listen (port 0: any free port).
        clock: "now" for the window status (injected by tests).
    """

    def __init__(
        self,
        db: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = Path(db)
        self.clock = clock
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.dashboard = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def answer(self, query: dict[str, str]) -> tuple[int, str]:
        """Status and HTML of the page for `query`."""
        try:
            with open_store(self.db) as store:
                return 200, build_page(store, query, db=str(self.db), now=self.clock())
        except StoreMissing as exc:
            return 200, page.message("Nothing to show yet", str(exc))
        except StoreBusy:
            detail = "A pipeline run is writing the data right now; this page reloads shortly."
            return HTTPStatus.SERVICE_UNAVAILABLE, page.message("Loading", detail, reload_seconds=5)

    def start(self) -> Self:
        """Serve in a background (daemon) thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="braze-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m braze_sends.dashboard",
        description="Serve the braze-sends dashboard of a DuckDB file on localhost.",
    )
    parser.add_argument("--db", default="braze_sends.duckdb", help="default %(default)s")
    parser.add_argument("--host", default="127.0.0.1", help="default %(default)s (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        dashboard = Dashboard(args.db, host=args.host, port=args.port)
    except OSError as exc:
        print(f"braze-sends dashboard: cannot listen on port {args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"braze-sends dashboard of {args.db} on {dashboard.url} (Ctrl-C to stop)", flush=True)
    try:
        dashboard.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.stop()
    return 0

"""`braze-sends sandbox`: serve the Braze API sandbox on a port (for the benchmark, or to explore).

    braze-sends sandbox --port 8077 --write-sends sends.csv
    SOURCES__BRAZE__BASE_URL=http://127.0.0.1:8077 SOURCES__BRAZE__API_KEY=sandbox-demo-key \\
        braze-sends run --sends sends.csv
"""

from __future__ import annotations

import argparse
import logging
import signal
from datetime import UTC, datetime, timedelta

from braze_sends.sandbox.catalog import RETENTION_MODES, Catalog
from braze_sends.sandbox.endpoint import DEMO_API_KEY
from braze_sends.sandbox.faults import Faults
from braze_sends.sandbox.ratelimit import RateLimit
from braze_sends.sandbox.server import SandboxServer

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="default %(default)s (loopback)")
    parser.add_argument("--port", type=int, default=8077, help="default %(default)s; 0 = any")
    parser.add_argument("--seed", type=int, default=7, help="catalog and fault seed")
    parser.add_argument("--sends", type=int, default=300, help="sends in the catalog")
    parser.add_argument("--campaigns", type=int, default=40, help="campaigns in the catalog")
    parser.add_argument(
        "--days", type=int, default=21, help="send dates spread over this many days up to today"
    )
    parser.add_argument("--timezone", default="UTC", help="the workspace time zone")
    parser.add_argument(
        "--retention",
        choices=RETENTION_MODES,
        default="zeros",
        help="the answer for a send past retention",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=250_000,
        metavar="N",
        help="requests per window (default %(default)s)",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="rate-limit window (default %(default)s)",
    )
    parser.add_argument(
        "--latency-ms",
        default=None,
        metavar="MIN-MAX",
        help="added latency per request, e.g. 100-300",
    )
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    parser.add_argument("--malformed-rate", type=float, default=0.0, help="share of bad bodies")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share of slow answers")
    parser.add_argument("--write-sends", metavar="FILE", help="write the catalog's pairs as CSV")


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    now = datetime.now(UTC)
    catalog = Catalog.generate(
        args.seed,
        start=now.date() - timedelta(days=args.days - 1),
        days=args.days,
        sends=args.sends,
        campaigns=args.campaigns,
        timezone=args.timezone,
        retention=args.retention,
    )
    if args.write_sends:
        catalog.write_sends_file(args.write_sends, as_of=now)
    server = SandboxServer(
        catalog,
        rate_limit=RateLimit(args.rate_limit, args.rate_window),
        faults=Faults(
            seed=args.seed,
            error_rate=args.error_rate,
            drop_rate=args.drop_rate,
            malformed_rate=args.malformed_rate,
            slow_rate=args.slow_rate,
        ),
        latency=_latency(args.latency_ms),
        host=args.host,
        port=args.port,
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(
        f"Braze sandbox on {server.url} (key {DEMO_API_KEY!r}; {len(catalog.pairs())} sends)",
        flush=True,
    )
    if args.write_sends:
        print(f"pairs written to {args.write_sends}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _latency(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    low, _, high = text.partition("-")
    return (float(low) / 1000, float(high or low) / 1000)

"""The fault matrix: one test per way Braze (or the network) can misbehave, each asserting the
outcome (retried through, or the pair recorded as failed with a clear error) and that nothing
already loaded is lost or duplicated.

Each scenario starts from a warehouse loaded at T, moves the sandbox one day on (so every stored
number is restated), injects its fault and runs again. Pairs expected to load must then equal
what the sandbox serves at T+1; a pair expected to fail must still hold exactly its rows of T.
`make reliability` prints the observed outcomes as a table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from braze_sends import SendPair
from braze_sends.errors import BrazeSendsError
from braze_sends.sandbox import (
    ALL_PERMISSIONS,
    Catalog,
    RateLimit,
    SandboxClock,
    SandboxServer,
)
from tests.conftest import NOW, Loader

OBSERVED: list[tuple[str, str, str]] = []  # (scenario, expected, observed): the report
FAST = {"backoff_seconds": 0.01, "max_attempts": 4, "request_timeout": 1.0, "rate_limit_wait": 0.5}


@dataclass
class Scenario:
    name: str
    expect: str  # "retried" | "failed" | "stopped"
    inject: Callable[[SandboxServer, Catalog, tuple[str, str]], None]
    error: str = ""  # a fragment of the recorded error (failed) or the raised one (stopped)
    run_args: dict[str, Any] = field(default_factory=dict)
    before: Callable[[SandboxServer, Catalog, tuple[str, str]], None] | None = None  # 1st load


def script(*steps):
    return lambda server, catalog, pair: server.script(*pair, list(steps))


def storm(**limit):
    """A tight budget for everybody, and two 429s for every pair (our pacing alone would avoid
    most 429s: the storm must really happen)."""

    def inject(server, catalog, pair):
        server.rate_limit = RateLimit(**limit)
        for campaign_id, send_id, _ in catalog.pairs():
            server.script(campaign_id, send_id, [429, 429])

    return inject


def serve_with(change: Callable[[dict], None]):
    """The target pair's response changed by `change(day)` on every day (a Braze-side change)."""

    def inject(server, catalog, pair):
        original = catalog.series

        def series(campaign_id, send_id, **kw):
            data = original(campaign_id, send_id, **kw)
            if (campaign_id, send_id) == pair:
                for day in data:
                    change(day)
            return data

        catalog.series = series

    return inject


def number_metric(day):
    for variations in day["messages"].values():
        for variation in variations:
            variation["shifty"] = 2.5


def text_metric(day):
    for variations in day["messages"].values():
        for variation in variations:
            variation["shifty"] = "n/a"


def new_channel(day):
    day["messages"]["line"] = [{"variation_name": "L", "sent": 7, "delivered": 6, "taps": 2}]


def huge(day):
    for channel in range(20):
        day["messages"][f"huge_channel_{channel}"] = [
            {"variation_name": f"v{v}", **{f"m{m}": m + v for m in range(40)}} for v in range(10)
        ]


SCENARIOS = [
    Scenario("429 storm with reset headers", "retried", storm(limit=3, window_seconds=1),
             run_args={"requests_per_hour": 10**7}),
    Scenario("429 storm without reset headers", "retried",
             storm(limit=3, window_seconds=1, send_reset=False), run_args={"requests_per_hour": 10**7}),
    Scenario("500 Internal Server Error x3", "retried", script(500, 500, 500)),
    Scenario("502 Bad Gateway x3", "retried", script(502, 502, 502)),
    Scenario("503 Service Unavailable x3", "retried", script(503, 503, 503)),
    Scenario("504 Gateway Timeout x3", "retried", script(504, 504, 504)),
    Scenario("5xx on every attempt", "failed", script(*[503] * 12), error="HTTP 503"),
    Scenario("server slower than the timeout x2", "retried", script("slow:2", "slow:2")),
    Scenario("connection dropped before headers x2", "retried", script("drop", "drop")),
    Scenario("connection dropped mid-body x2", "retried", script("drop_mid_body", "drop_mid_body")),
    Scenario("truncated JSON x2", "retried", script("truncated_json", "truncated_json")),
    Scenario("HTML error page from a proxy x2", "retried",
             script("html_proxy_page", "html_proxy_page")),
    Scenario("200 without `data`, every attempt", "failed",
             script(*["wrong_shape:data_missing"] * 12), error="without a `data` list"),
    Scenario("200 with `data` not a list, every attempt", "failed",
             script(*["wrong_shape:data_not_list"] * 12), error="without a `data` list"),
    Scenario("200 with a day without `time`", "failed",
             script(*["wrong_shape:day_without_time"] * 12), error="`time`"),
    Scenario("huge response (20 extra channels x 10 variations x 40 metrics)", "retried",
             serve_with(huge)),
    Scenario("a new channel with a new metric", "retried", serve_with(new_channel)),
    Scenario("a metric whose type changes (number, then text)", "failed", serve_with(text_metric),
             error="'shifty' is now text but send_variation_daily.shifty is double",
             before=serve_with(number_metric)),
    Scenario("400 for one pair", "failed", script(*[400] * 12), error="HTTP 400"),
    Scenario("401 key for another instance", "stopped",
             lambda server, catalog, pair: server.api_keys.clear(), error="HTTP 401"),
    Scenario("403 key without the permission", "stopped",
             lambda server, catalog, pair: server.api_keys.update({"sandbox-demo-key": set()}),
             error="sends.data_series"),
]  # fmt: skip


def stored_rows(loader: Loader, pair: tuple[str, str]):
    columns = [c for c, *_ in loader.sql("DESCRIBE braze.send_variation_daily")
               if c not in ("pulled_at", "_dlt_load_id", "_dlt_id")]  # fmt: skip
    return loader.sql(f"SELECT {', '.join(columns)} FROM braze.send_variation_daily WHERE "
                      "campaign_id = ? AND send_id = ? ORDER BY ALL", *pair)  # fmt: skip


def sums_by_pair(loader: Loader):
    return {(c, s): (n, sent) for c, s, n, sent in loader.sql(
        "SELECT campaign_id, send_id, count(*), sum(sent) FROM braze.send_variation_daily "
        "GROUP BY ALL")}  # fmt: skip


def served_sums(catalog: Catalog, pairs, as_of):
    out = {}
    for campaign_id, send_id, sent_at in pairs:
        length = (as_of.date() - sent_at.date()).days + 1
        rows = sent = 0
        for day in catalog.series(campaign_id, send_id, length=length, ending_at_date=as_of.date(),
                                  as_of=as_of):  # fmt: skip
            for variations in day["messages"].values():
                rows += len(variations)
                sent += sum(v.get("sent") or 0 for v in variations)
        out[(campaign_id, send_id)] = (rows, sent)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault(scenario: Scenario, tmp_path):
    catalog = Catalog.generate(
        31, start=NOW.date() - timedelta(days=9), days=9, sends=6, campaigns=3
    )
    pairs = [(c, s, at) for c, s, at in catalog.pairs() if at <= NOW]
    target = pairs[0][:2]
    clock = SandboxClock(NOW, frozen=True)
    with SandboxServer(
        catalog, clock=clock, api_keys={"sandbox-demo-key": ALL_PERMISSIONS}
    ) as server:
        loader = Loader(tmp_path, server)
        if scenario.before:
            scenario.before(server, catalog, target)
        first = loader.run(pairs=[SendPair(*p) for p in pairs], **FAST)
        assert first.failed == 0
        before_target = stored_rows(loader, target)

        later = NOW + timedelta(days=1)
        clock.set(later)
        scenario.inject(server, catalog, target)
        requests_before = server.stats.total
        try:
            result = loader.run(now=later, **{**FAST, **scenario.run_args})
            raised = None
        except BrazeSendsError as exc:
            result, raised = None, exc
        requests = server.stats.total - requests_before
        statuses = dict(server.stats.by_status)

    stored = sums_by_pair(loader)
    truth = served_sums(catalog, pairs, later)
    dupes = loader.sql("SELECT count(*) FROM (SELECT campaign_id, send_id, date, channel, "
                       "variation_name FROM braze.send_variation_daily GROUP BY ALL "
                       "HAVING count(*) > 1)")[0][0]  # fmt: skip
    assert dupes == 0
    others = [p[:2] for p in pairs[1:]]
    if scenario.expect == "retried":
        assert result.failed == 0, result.summary["failures"]
        for pair in [target, *others]:
            assert stored[pair] == truth[pair], pair
        observed = f"retried through: {requests} requests, all {len(pairs)} pairs current"
    elif scenario.expect == "failed":
        assert result.failed == 1
        (error,) = loader.sql("SELECT last_error FROM braze.sends WHERE campaign_id = ? AND "
                              "send_id = ?", *target)[0]  # fmt: skip
        assert scenario.error in error and f"send_id={target[1]!r}" in error
        assert stored_rows(loader, target) == before_target  # nothing lost, nothing half-written
        for pair in others:
            assert stored[pair] == truth[pair], pair
        detail = error.split(": ", 1)[-1]
        observed = f"pair recorded failed: {detail[:60]}...; {len(others)} others current"
    else:
        assert raised is not None and scenario.error in str(raised)
        assert "sandbox-demo-key" not in str(raised)
        assert stored_rows(loader, target) == before_target
        observed = f"run stopped at once ({requests} requests): {str(raised)[:60]}..."
    if "429" in scenario.name:
        assert statuses.get(429, 0) > 0  # the storm did happen
        observed += f", {statuses[429]} x 429"
    OBSERVED.append((scenario.name, scenario.expect, observed))

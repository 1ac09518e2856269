"""The `campaigns` dimension: the client's campaign calls, the rows, and the refresh cadence,
counted at the sandbox over several runs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from braze_sends import SendPair
from braze_sends.campaigns import (
    CampaignOptions,
    behavior_label,
    campaign_row,
    due_campaigns,
)
from braze_sends.client import BrazeClient, RetryPolicy
from braze_sends.errors import ConfigurationError, PermissionDeniedError
from braze_sends.ratelimit import RateLimiter
from braze_sends.sandbox import ALL_PERMISSIONS, DEMO_API_KEY, SandboxClock, SandboxServer
from braze_sends.sandbox.server import CAMPAIGN_DETAILS_PATH, CAMPAIGNS_LIST_PATH, DATA_SERIES_PATH
from tests.conftest import NOW, Loader, small_catalog

DETAILS = CAMPAIGN_DETAILS_PATH


def campaign_ids(catalog) -> set[str]:
    return {c for c, _, at in catalog.pairs() if at <= NOW}


def sent_count(catalog) -> int:
    return sum(1 for *_, at in catalog.pairs() if at <= NOW)


def client_for(server: SandboxServer, key: str = DEMO_API_KEY, **retry) -> BrazeClient:
    policy = RetryPolicy(**{"max_attempts": 3, "backoff_initial": 0.01, **retry})
    return BrazeClient(server.url, key, retry=policy, limiter=RateLimiter(10**6))


# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "behavior, label",
    [
        (
            {"type": "Performs Custom Event", "custom_event_name": "checkout_completed"},
            "Performs Custom Event: checkout_completed",
        ),
        ({"type": "Makes Any Purchase", "window": 86400}, "Makes Any Purchase"),
        ({"type": "Makes Specific Purchase", "product": "shoes"}, "Makes Specific Purchase: shoes"),
        ({"custom_event_name": "signed_up"}, "signed_up"),
        ({}, None),
        ("not a dict", None),
    ],
)
def test_behavior_labels(behavior, label):
    assert behavior_label(behavior) == label


def test_a_details_answer_becomes_one_row_with_events_a_to_d_named():
    pulled = datetime(2026, 11, 20, tzinfo=UTC)
    details = {
        "name": "Cart Nudge",
        "description": "d",
        "tags": ["promo", "vip"],
        "channels": ["email", "ios_push"],
        "archived": False,
        "enabled": True,
        "first_sent": "2026-11-01T10:00:00+00:00",
        "last_sent": "2026-11-19T10:00:00Z",
        "conversion_behaviors": [
            {"type": "Performs Custom Event", "custom_event_name": "checkout", "window": 259200},
            {"type": "Makes Any Purchase", "window": 86400},
        ],
        "messages": {"v1": {"channel": "email", "name": "Variant A"}},
    }
    row = campaign_row("c-1", details, pulled_at=pulled)
    assert row["name"] == "Cart Nudge" and row["tags"] == "promo, vip"
    assert row["channels"] == "email, ios_push" and row["archived"] is False
    assert row["first_sent"] == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert row["last_sent"] == datetime(2026, 11, 19, 10, tzinfo=UTC)
    assert row["conversions_label"] == "Performs Custom Event: checkout"
    assert row["conversions_window_seconds"] == 259200
    assert row["conversions1_label"] == "Makes Any Purchase"
    assert row["conversions2_label"] is None and row["conversions3_window_seconds"] is None
    assert '"custom_event_name": "checkout"' in row["conversion_behaviors"]
    empty = campaign_row("c-2", {"tags": []}, pulled_at=pulled)
    assert empty["name"] is None and empty["tags"] is None and empty["messages"] is None


def test_due_campaigns_follow_the_cadence():
    now, day = datetime(2026, 11, 20, tzinfo=UTC), timedelta(hours=24)

    def entry(hours_ago: float, pulled: bool = True, retry: bool = False) -> dict:
        at = (now - timedelta(hours=hours_ago)).isoformat()
        return {"attempted_at": at, "pulled_at": at if pulled else None, "retry": retry}

    state = {
        "campaigns": {
            "fresh": entry(2),
            "stale": entry(25),
            "stale_done": entry(100),
            "refused_recently": entry(2, pulled=False),
            "refused_long_ago": entry(30, pulled=False),
            "transient": entry(1, pulled=False, retry=True),
        }
    }
    known = [*state["campaigns"], "never"]
    active = {"fresh", "stale", "refused_recently", "refused_long_ago", "transient", "never"}
    due = due_campaigns(known, active, state, now=now, refresh=day)
    assert due == ["never", "refused_long_ago", "stale", "transient"]


def test_refresh_hours_must_be_positive():
    with pytest.raises(ConfigurationError, match="campaigns_refresh_hours"):
        CampaignOptions(refresh_hours=0)


# -- the client ---------------------------------------------------------------------------------


def test_client_lists_every_page_and_reads_details(catalog):
    for n in range(230):  # 238 campaigns: three pages
        catalog.add_campaign(f"extra-{n:03d}")
    with SandboxServer(catalog, clock=SandboxClock(NOW, frozen=True)) as server:
        client = client_for(server)
        rows = list(client.campaigns_list(include_archived=True))
        some = next(iter(campaign_ids(catalog)))
        details = client.campaign_details(some)
        pages = [int(r.params["page"]) for r in server.stats.log if r.path == CAMPAIGNS_LIST_PATH]
    assert len(rows) == len(catalog.campaigns) == 238 and pages == [0, 1, 2]
    assert details["name"] == catalog.campaigns[some].name
    assert client.stats.requests == 4


def test_client_retries_campaign_calls_and_raises_typed_errors(catalog):
    keys = {DEMO_API_KEY: ALL_PERMISSIONS, "series-only": {"sends.data_series"}}
    some = next(iter(campaign_ids(catalog)))
    with SandboxServer(catalog, clock=SandboxClock(NOW, frozen=True), api_keys=keys) as server:
        server.script_endpoint(DETAILS, [503, "truncated_json"], campaign_id=some)
        client = client_for(server)
        assert client.campaign_details(some)["name"] == catalog.campaigns[some].name
        assert client.stats.retries == 2
        with pytest.raises(PermissionDeniedError) as denied:
            client_for(server, "series-only").campaign_details(some)
    assert denied.value.status == 403 and denied.value.campaign_id == some


# -- the pipeline -------------------------------------------------------------------------------


def test_every_campaign_with_registered_sends_is_loaded_with_its_event_names(
    loader, catalog, sends_file, sandbox
):
    result = loader.run(sends_file=str(sends_file))
    assert result.failed == 0
    rows = loader.sql(
        "SELECT campaign_id, name, channels, conversions_label, conversions1_label, "
        "conversion_behaviors, first_sent, last_sent, pulled_at FROM braze.campaigns"
    )
    assert {r[0] for r in rows} == campaign_ids(catalog)
    for campaign_id, name, channels, label_a, label_b, raw, first, last, pulled in rows:
        campaign = catalog.campaigns[campaign_id]
        assert name == campaign.name and channels == ", ".join(campaign.channels)
        behaviors = campaign.conversion_behaviors
        assert label_a == behavior_label(behaviors[0])
        assert label_b == (behavior_label(behaviors[1]) if len(behaviors) > 1 else None)
        sent = [at for c, _, at in catalog.pairs() if c == campaign_id and at <= NOW]
        assert (first, last) == (min(sent), max(sent))
        assert pulled == NOW
    # readable next to the metrics: the event A of each send
    joined = loader.sql(
        "SELECT count(*) FROM braze.send_daily d JOIN braze.campaigns c USING (campaign_id) "
        "WHERE c.conversions_label IS NOT NULL"
    )
    assert joined[0][0] == loader.sql("SELECT count(*) FROM braze.send_daily")[0][0]


def test_one_details_request_per_campaign_per_refresh_period(loader, catalog, sends_file, sandbox):
    """The cadence, counted at the sandbox: runs 1 h apart over two days (refresh 24 h)."""
    campaigns = campaign_ids(catalog)
    per_run = []
    for hours in (0, 1, 2, 12, 23, 24, 25, 30, 47, 48):
        before = sandbox.stats.by_campaign(DETAILS)
        sandbox.clock.set(NOW + timedelta(hours=hours))
        loader.run(sends_file=str(sends_file) if hours == 0 else None, now=sandbox.clock.now())
        after = sandbox.stats.by_campaign(DETAILS)
        per_run.append(sum(after.values()) - sum(before.values()))
        assert all(n <= 1 + hours // 24 for n in after.values())  # never more than 1 a period
    assert per_run == [len(campaigns), 0, 0, 0, 0, len(campaigns), 0, 0, 0, len(campaigns)]
    assert set(sandbox.stats.by_campaign(DETAILS)) == campaigns
    assert sandbox.stats.by_path[DATA_SERIES_PATH] >= 10 * sent_count(catalog) * 0.9


def test_a_new_campaign_is_fetched_on_the_run_that_registers_it(loader, catalog, sandbox):
    pairs = [SendPair(c, s, at) for c, s, at in catalog.pairs() if at <= NOW]
    first = pairs[0].campaign_id
    loader.run(pairs=[p for p in pairs if p.campaign_id == first])
    assert sandbox.stats.by_campaign(DETAILS) == {first: 1}
    loader.run(pairs=pairs, now=NOW + timedelta(hours=1))
    counts = sandbox.stats.by_campaign(DETAILS)
    assert counts == dict.fromkeys(campaign_ids(catalog), 1)  # the new ones once, the first not
    names = dict(loader.sql("SELECT campaign_id, name FROM braze.campaigns"))
    assert set(names) == campaign_ids(catalog)


def test_a_campaign_that_fails_never_stops_the_run_or_the_send_data(
    loader, catalog, sends_file, sandbox, caplog
):
    broken, flaky, *_ = sorted(campaign_ids(catalog))
    sandbox.script_endpoint(DETAILS, [400], campaign_id=broken)
    sandbox.script_endpoint(DETAILS, [503] * 6, campaign_id=flaky)  # outlasts the retries
    with caplog.at_level(logging.WARNING, logger="braze_sends.campaigns"):
        result = loader.run(sends_file=str(sends_file), backoff_seconds=0.01)
    assert result.failed == 0 and result.summary["pulled"] == sent_count(catalog)
    loaded = {c for (c,) in loader.sql("SELECT campaign_id FROM braze.campaigns")}
    assert loaded == campaign_ids(catalog) - {broken, flaky}
    assert f"campaign_id={broken!r}" in caplog.text and "HTTP 400" in caplog.text
    # next run: the transient one again, the refused one only after a refresh period
    loader.run(now=NOW + timedelta(hours=1))
    loaded = {c for (c,) in loader.sql("SELECT campaign_id FROM braze.campaigns")}
    assert loaded == campaign_ids(catalog) - {broken}
    assert sandbox.stats.by_campaign(DETAILS)[broken] == 1
    loader.run(now=NOW + timedelta(hours=25))
    assert {c for (c,) in loader.sql("SELECT campaign_id FROM braze.campaigns")} == (
        campaign_ids(catalog)
    )


def test_a_key_without_campaigns_details_loads_the_sends_and_warns_once_a_period(
    tmp_path, catalog, sends_file, caplog
):
    keys = {"series-only": {"sends.data_series"}}
    with SandboxServer(catalog, clock=SandboxClock(NOW, frozen=True), api_keys=keys) as server:
        loader = Loader(tmp_path, server)
        with caplog.at_level(logging.WARNING, logger="braze_sends.campaigns"):
            result = loader.run(sends_file=str(sends_file), api_key="series-only")
            loader.run(api_key="series-only", now=NOW + timedelta(hours=1))
        denied = server.stats.count(403, path=DETAILS)
    assert result.failed == 0 and result.summary["pulled"] == sent_count(catalog)
    assert loader.sql("SELECT count(*) FROM braze.send_daily")[0][0] > 0
    assert 1 <= denied <= 8  # the first wave of workers at most, then no more for 24 h
    assert "`campaigns.details` permission" in caplog.text
    assert "series-only" not in caplog.text


def test_register_only_runs_and_disabled_campaigns_ask_nothing(loader, catalog, sandbox):
    pairs = [SendPair(c, s, at) for c, s, at in catalog.pairs() if at <= NOW]
    loader.run(pairs=pairs, max_requests=0)
    assert sandbox.stats.total == 0
    loader.run(campaigns=False)
    assert DETAILS not in sandbox.stats.by_path
    assert sandbox.stats.by_path[DATA_SERIES_PATH] == len(pairs)


def test_sends_and_campaigns_share_one_rate_limiter(loader, catalog, sends_file, monkeypatch):
    limiters = []
    original = BrazeClient.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        limiters.append(self.limiter)

    monkeypatch.setattr(BrazeClient, "__init__", spy)
    loader.run(sends_file=str(sends_file))
    assert limiters and all(limiter is limiters[0] for limiter in limiters)


@pytest.fixture
def catalog():
    return small_catalog()

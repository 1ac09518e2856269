"""The sandbox's `/campaigns/list` and `/campaigns/details`, over HTTP on loopback: auth, paging,
filters, fields, the shared rate budget, faults and per-endpoint counters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from braze_sends.sandbox import (
    ALL_PERMISSIONS,
    DEMO_API_KEY,
    Catalog,
    RateLimit,
    SandboxClock,
    SandboxServer,
)
from braze_sends.sandbox.server import CAMPAIGN_DETAILS_PATH, CAMPAIGNS_LIST_PATH, DATA_SERIES_PATH

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SERIES_ONLY_KEY = "key-with-data-series-only"
LIST_ONLY_KEY = "key-with-campaigns-list-only"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """250 campaigns (3 pages), a few archived, each with one send over the last 10 days."""
    return Catalog.generate(
        5, start=date(2026, 11, 12), days=10, sends=250, campaigns=250, timezone="UTC"
    )


def serve(catalog: Catalog, **options) -> SandboxServer:
    keys = {
        DEMO_API_KEY: ALL_PERMISSIONS,
        SERIES_ONLY_KEY: {"sends.data_series"},
        LIST_ONLY_KEY: {"campaigns.list"},
    }
    return SandboxServer(catalog, clock=SandboxClock(NOW, frozen=True), api_keys=keys, **options)


@pytest.fixture
def server(catalog):
    with serve(catalog) as srv:
        yield srv


def call(srv: SandboxServer, path: str, key: str = DEMO_API_KEY, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return requests.get(srv.url + path, params=params, headers=headers, timeout=5)


def test_list_pages_of_100_from_page_0_without_archived_by_default(server, catalog):
    pages = [call(server, CAMPAIGNS_LIST_PATH, page=n).json()["campaigns"] for n in range(4)]
    active = [c for c in catalog.campaigns.values() if not c.archived]
    assert 0 < len(active) < 250  # the catalog has archived campaigns to leave out
    assert [len(p) for p in pages] == [100, 100, len(active) - 200, 0]
    rows = [row for page in pages for row in page]
    assert {r["id"] for r in rows} == {c.id for c in active}
    assert set(rows[0]) == {"id", "name", "is_api_campaign", "tags", "last_edited"}
    created = [catalog.campaigns[r["id"]].created_at for r in rows]
    assert created == sorted(created)  # asc (oldest first) is the default


def test_list_include_archived_and_sort_direction(server, catalog):
    everything = []
    for page in range(3):
        everything += call(
            server, CAMPAIGNS_LIST_PATH, page=page, include_archived="true", sort_direction="desc"
        ).json()["campaigns"]
    assert len(everything) == 250
    created = [catalog.campaigns[r["id"]].created_at for r in everything]
    assert created == sorted(created, reverse=True)


def test_list_last_edit_filter(server, catalog):
    edited = sorted(c.last_edited for c in catalog.campaigns.values() if not c.archived)
    cut = edited[-50]
    rows = call(server, CAMPAIGNS_LIST_PATH, **{"last_edit.time[gt]": cut.isoformat()}).json()[
        "campaigns"
    ]
    assert len(rows) == 49 == sum(1 for t in edited if t > cut)
    assert all(datetime.fromisoformat(r["last_edited"]) > cut for r in rows)


@pytest.mark.parametrize(
    "params, mentions",
    [
        ({"page": "-1"}, "page"),
        ({"page": "two"}, "page"),
        ({"include_archived": "yes"}, "include_archived"),
        ({"sort_direction": "up"}, "sort_direction"),
        ({"last_edit.time[gt]": "yesterday"}, "last_edit.time[gt]"),
    ],
)
def test_list_rejects_bad_parameters_with_400(server, params, mentions):
    response = call(server, CAMPAIGNS_LIST_PATH, **params)
    assert response.status_code == 400 and mentions in response.json()["message"]


def test_details_fields_behaviors_messages_and_sent_range(server, catalog):
    sent_by_now = {c for c, _, at in catalog.pairs() if at <= NOW}
    campaign = next(
        c
        for c in catalog.campaigns.values()
        if len(c.conversion_behaviors) >= 2 and c.id in sent_by_now
    )
    body = call(server, CAMPAIGN_DETAILS_PATH, campaign_id=campaign.id).json()
    for field in (
        "name",
        "description",
        "created_at",
        "updated_at",
        "archived",
        "draft",
        "enabled",
        "schedule_type",
        "channels",
        "first_sent",
        "last_sent",
        "tags",
        "teams",
        "messages",
        "conversion_behaviors",
    ):
        assert field in body, field
    assert body["message"] == "success" and body["name"] == campaign.name
    assert body["conversion_behaviors"] == [dict(b) for b in campaign.conversion_behaviors]
    assert all("type" in b and "window" in b for b in body["conversion_behaviors"])
    assert body["channels"] == list(campaign.channels)
    assert {m["channel"] for m in body["messages"].values()} == set(campaign.channels)
    assert all(m["name"].startswith("Variant ") for m in body["messages"].values())
    sent = [at for c, _, at in catalog.pairs() if c == campaign.id and at <= NOW]
    assert datetime.fromisoformat(body["first_sent"]) == min(sent)
    assert datetime.fromisoformat(body["last_sent"]) == max(sent)


def test_details_of_an_unknown_or_missing_campaign_is_400(server):
    assert call(server, CAMPAIGN_DETAILS_PATH, campaign_id="nope").json() == {
        "message": "Invalid Campaign ID"
    }
    missing = call(server, CAMPAIGN_DETAILS_PATH)
    assert missing.status_code == 400 and "campaign_id is required" in missing.json()["message"]


def test_an_edit_shows_in_details_and_in_the_last_edit_filter(catalog):
    fresh = Catalog.generate(5, start=date(2026, 11, 12), days=10, sends=20, campaigns=20)
    campaign = next(c for c in fresh.campaigns.values() if not c.archived)
    edited_at = NOW - timedelta(minutes=5)
    campaign.edit(edited_at, name="Renamed")
    with serve(fresh) as srv:
        body = call(srv, CAMPAIGN_DETAILS_PATH, campaign_id=campaign.id).json()
        recent = call(
            srv, CAMPAIGNS_LIST_PATH, **{"last_edit.time[gt]": (NOW - timedelta(hours=1))}
        ).json()["campaigns"]
    assert body["name"] == "Renamed" and datetime.fromisoformat(body["updated_at"]) == edited_at
    assert [r["id"] for r in recent] == [campaign.id]


@pytest.mark.parametrize("path", [CAMPAIGNS_LIST_PATH, CAMPAIGN_DETAILS_PATH])
def test_auth_and_permissions(server, catalog, path):
    campaign_id = next(iter(catalog.campaigns))
    assert call(server, path, key="wrong", campaign_id=campaign_id).status_code == 401
    denied = call(server, path, key=SERIES_ONLY_KEY, campaign_id=campaign_id)
    permission = "campaigns.list" if path == CAMPAIGNS_LIST_PATH else "campaigns.details"
    assert denied.status_code == 403 and permission in denied.json()["message"]
    listed = call(server, CAMPAIGNS_LIST_PATH, key=LIST_ONLY_KEY)
    assert listed.status_code == 200
    assert (
        call(server, CAMPAIGN_DETAILS_PATH, key=LIST_ONLY_KEY, campaign_id=campaign_id).status_code
        == 403
    )


def test_one_rate_budget_for_every_endpoint(catalog):
    campaign_id, send_id, _ = catalog.pairs()[0]
    with serve(catalog, rate_limit=RateLimit(3, 3600)) as srv:
        answers = [
            call(srv, CAMPAIGNS_LIST_PATH),
            call(srv, CAMPAIGN_DETAILS_PATH, campaign_id=campaign_id),
            call(srv, DATA_SERIES_PATH, campaign_id=campaign_id, send_id=send_id, length=1),
            call(srv, CAMPAIGN_DETAILS_PATH, campaign_id=campaign_id),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert "x-ratelimit-reset" in answers[1].headers


def test_scripted_faults_per_campaign_then_any_campaign(server, catalog):
    first, second = list(catalog.campaigns)[:2]
    server.script_endpoint(CAMPAIGN_DETAILS_PATH, [503, "truncated_json"], campaign_id=first)
    server.script_endpoint(CAMPAIGN_DETAILS_PATH, [502])
    server.script_endpoint(CAMPAIGNS_LIST_PATH, ["wrong_shape:data_missing"])
    statuses = [
        call(server, CAMPAIGN_DETAILS_PATH, campaign_id=c).status_code
        for c in (first, second, first, first)
    ]
    assert statuses == [503, 502, 200, 200]
    listed = call(server, CAMPAIGNS_LIST_PATH)
    assert listed.status_code == 200 and "campaigns" not in listed.json()
    assert call(server, CAMPAIGNS_LIST_PATH).json()["campaigns"]
    with pytest.raises(ValueError):
        server.script_endpoint(DATA_SERIES_PATH, [500])


def test_the_admin_script_endpoint_takes_a_path(server, catalog):
    campaign_id = next(iter(catalog.campaigns))
    admin = server.url + "/_sandbox/script"
    requests.post(
        admin, json={"path": CAMPAIGN_DETAILS_PATH, "campaign_id": campaign_id, "steps": [504]}
    )
    assert call(server, CAMPAIGN_DETAILS_PATH, campaign_id=campaign_id).status_code == 504


def test_stats_count_requests_per_endpoint_and_campaign(server, catalog):
    first, second = list(catalog.campaigns)[:2]
    campaign_id, send_id, _ = catalog.pairs()[0]
    call(server, CAMPAIGNS_LIST_PATH)
    call(server, CAMPAIGN_DETAILS_PATH, campaign_id=first)
    call(server, CAMPAIGN_DETAILS_PATH, campaign_id=first)
    call(server, CAMPAIGN_DETAILS_PATH, key="wrong", campaign_id=second)
    call(server, DATA_SERIES_PATH, campaign_id=campaign_id, send_id=send_id, length=1)
    stats = server.stats
    assert stats.by_path == {CAMPAIGNS_LIST_PATH: 1, CAMPAIGN_DETAILS_PATH: 3, DATA_SERIES_PATH: 1}
    assert stats.by_campaign(CAMPAIGN_DETAILS_PATH) == {first: 2, second: 1}
    assert stats.count(200, path=CAMPAIGN_DETAILS_PATH) == 2 and stats.count(200) == 4
    assert stats.count(401, path=CAMPAIGN_DETAILS_PATH) == 1
    assert stats.by_pair == {(campaign_id, send_id): 1}  # only the series counts pairs
    assert stats.snapshot(0)["by_path"][CAMPAIGN_DETAILS_PATH] == 3
    stats.reset()
    assert stats.by_path == {} and stats.by_campaign(CAMPAIGN_DETAILS_PATH) == {}

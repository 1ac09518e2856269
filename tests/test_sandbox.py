"""The Braze API sandbox, over HTTP on loopback: auth, validation, windows, data, limits, faults."""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import random
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from braze_sends.sandbox import (
    ALL_PERMISSIONS,
    CONTROL_GROUP,
    DEMO_API_KEY,
    Catalog,
    Faults,
    RateLimit,
    SandboxClock,
    SandboxServer,
)

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PATH = "/sends/data_series"
NO_PERM_KEY = "key-without-data-series"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
META = ("variation_name", "variation_api_id")

# (subset metrics, metric they are part of): must hold per day and variation at every as_of.
SUBSETS = {
    "push": [
        (("delivered", "undelivered"), "sent"),
        (("delivery_failed",), "undelivered"),
        (("bounces",), "undelivered"),
        (("direct_opens",), "total_opens"),
        (("body_clicks",), "direct_opens"),
        (("unique_recipients",), "sent"),
    ],
    "email": [
        (("delivered", "bounces"), "sent"),
        (("unique_opens",), "opens"),
        (("unique_clicks",), "clicks"),
        (("clicks",), "opens"),
        (("machine_open",), "opens"),
        (("machine_amp_open",), "machine_open"),
        (("unique_recipients",), "sent"),
    ],
    "sms": [
        (("sent_to_carrier",), "sent"),
        (("delivered", "rejected", "delivery_failed"), "sent_to_carrier"),
    ],
    "whats_app": [(("delivered", "failed"), "sent")],
    "webhook": [(("errors",), "sent")],
    "content_cards": [
        (("unique_clicks",), "total_clicks"),
        (("unique_impressions",), "total_impressions"),
        (("unique_dismissals",), "total_dismissals"),
        (("total_clicks",), "total_impressions"),
    ],
    "trigger_in_app_message": [
        (("clicks",), "impressions"),
        (("first_button_clicks", "second_button_clicks"), "clicks"),
    ],
}


def day_problems(day: dict) -> list[str]:
    """Every broken invariant of one day object."""
    problems, sums = [], {}
    for channel, variations in day["messages"].items():
        family = "push" if channel.endswith("_push") else channel
        for v in variations:
            values = {k: x for k, x in v.items() if k not in META}
            problems += [f"{channel}.{k} < 0" for k, x in values.items() if x < 0]
            if v["variation_name"] == CONTROL_GROUP:
                if "sent" in v or v["unique_recipients"] > v["enrolled"]:
                    problems.append("control group carries send metrics")
                continue
            for parts, whole in SUBSETS.get(family, []):
                if sum(v[p] for p in parts) > v[whole]:
                    problems.append(f"{day['time']} {channel}: {'+'.join(parts)} > {whole}")
            for k, x in values.items():
                if k.startswith("conversions") or k in ("unique_recipients", "revenue"):
                    sums[k] = sums.get(k, 0) + x
    for k, x in sums.items():
        if (k == "revenue" and abs(day[k] - x) > 0.011) or (k != "revenue" and day[k] != x):
            problems.append(f"{day['time']} day-level {k}={day[k]} != sum {x}")
    return problems


def numbers(day: dict) -> list[float]:
    """Every metric value of a day, in a stable order."""
    out = [day[k] for k in sorted(day) if k not in ("time", "messages")]
    for channel in sorted(day["messages"]):
        for v in day["messages"][channel]:
            out += [v[k] for k in sorted(v) if k not in META]
    return out


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.demo(TODAY)


@pytest.fixture
def fresh() -> Catalog:
    """A catalog that a test may change (retention, added sends)."""
    return Catalog.demo(TODAY)


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(NOW, frozen=True)


def make_server(catalog: Catalog, clock: SandboxClock, **options) -> SandboxServer:
    keys = {DEMO_API_KEY: ALL_PERMISSIONS, NO_PERM_KEY: {"campaigns.list"}}
    return SandboxServer(catalog, clock=clock, api_keys=keys, **options)


@pytest.fixture
def server(catalog, clock):
    with make_server(catalog, clock) as srv:
        yield srv


def get(
    srv: SandboxServer,
    key: str | None = DEMO_API_KEY,
    scheme: str = "Bearer",
    timeout: float = 5,
    **params,
) -> requests.Response:
    headers = {"Authorization": f"{scheme} {key}"} if key is not None else {}
    return requests.get(srv.url + PATH, params=params, headers=headers, timeout=timeout)


def pair_sent(catalog: Catalog, days_ago: float) -> tuple[str, str, datetime]:
    """The send closest to ``days_ago`` days before NOW."""
    target = NOW - timedelta(days=days_ago)
    return min(catalog.pairs(), key=lambda p: abs(p[2] - target))


# ---- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_in_any_casing_is_accepted(server, catalog, scheme):
    cid, sid, _ = pair_sent(catalog, 3)
    response = get(server, scheme=scheme, campaign_id=cid, send_id=sid, length=3)
    assert response.status_code == 200
    assert response.json()["message"] == "success"


@pytest.mark.parametrize("key", ["not-a-real-key-123", DEMO_API_KEY + "x"])
def test_unknown_key_is_401_echoing_the_key(server, catalog, key):
    cid, sid, _ = pair_sent(catalog, 3)
    response = get(server, key=key, campaign_id=cid, send_id=sid, length=3)
    assert response.status_code == 401
    assert response.json() == {"message": f"Invalid API key: {key}"}


def test_missing_key_or_other_scheme_is_401(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    assert get(server, key=None, campaign_id=cid, send_id=sid, length=3).status_code == 401
    basic = get(server, scheme="Basic", campaign_id=cid, send_id=sid, length=3)
    assert basic.status_code == 401 and basic.json()["message"].startswith("Invalid API key")


def test_key_without_the_permission_is_403(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    response = get(server, key=NO_PERM_KEY, campaign_id=cid, send_id=sid, length=3)
    assert response.status_code == 403
    assert "sends.data_series" in response.json()["message"]


# ---- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "extra", "mentions"),
    [
        ("campaign_id", {}, "campaign_id"),
        ("send_id", {}, "send_id"),
        ("length", {}, "length"),
        (None, {"length": "0"}, "length"),
        (None, {"length": "101"}, "length"),
        (None, {"length": "abc"}, "length"),
        (None, {"length": "1.5"}, "length"),
        (None, {"length": "-3"}, "length"),
        (None, {"ending_at": "yesterday"}, "ending_at"),
        (None, {"ending_at": "2026-13-40"}, "ending_at"),
        (None, {"ending_at": "2026-11-20T25:00:00"}, "ending_at"),
    ],
)
def test_invalid_parameters_are_400_with_clear_errors(server, catalog, drop, extra, mentions):
    cid, sid, _ = pair_sent(catalog, 3)
    params = {"campaign_id": cid, "send_id": sid, "length": "5", **extra}
    params.pop(drop, None)
    response = get(server, **params)
    assert response.status_code == 400
    body = response.json()
    assert mentions in body["message"]
    assert body["errors"] and all(isinstance(e, str) for e in body["errors"])


def test_unencoded_plus_in_offset_gets_a_hint(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    url = (
        f"{server.url}{PATH}?campaign_id={cid}&send_id={sid}&length=3"
        "&ending_at=2026-11-20T23:59:59+05:00"
    )
    response = requests.get(url, headers={"Authorization": f"Bearer {DEMO_API_KEY}"}, timeout=5)
    assert response.status_code == 400 and "%2B" in response.json()["message"]


@pytest.mark.parametrize("length", [1, 100])
def test_length_bounds_are_inclusive(server, catalog, length):
    cid, sid, _ = pair_sent(catalog, 3)
    response = get(server, campaign_id=cid, send_id=sid, length=length)
    assert response.status_code == 200
    assert len(response.json()["data"]) == length


def test_unknown_campaign_and_unknown_send(server, catalog):
    cid, _, _ = pair_sent(catalog, 3)
    unknown = get(server, campaign_id="00000000-0000-4000-8000-000000000000", send_id="x", length=3)
    assert (unknown.status_code, unknown.json()) == (400, {"message": "Invalid Campaign ID"})
    no_send = get(server, campaign_id=cid, send_id="send_does_not_exist", length=3)
    assert (no_send.status_code, no_send.json()) == (400, {"message": "Invalid Send ID"})


# ---- windows ---------------------------------------------------------------------------------


def dates_of(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [day["time"] for day in response.json()["data"]]


def test_series_has_length_days_ending_on_ending_at_in_workspace_zone(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    # 23:59:59 at -05:00 is 04:59:59 the next day in the (UTC) workspace.
    days = dates_of(
        get(server, campaign_id=cid, send_id=sid, length=7, ending_at="2026-11-18T23:59:59-05:00")
    )
    expected = [(date(2026, 11, 19) - timedelta(days=6 - n)).isoformat() for n in range(7)]
    assert days == expected


def test_date_only_ending_at_ends_the_day_before(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    days = dates_of(get(server, campaign_id=cid, send_id=sid, length=2, ending_at="2026-11-18"))
    assert days == ["2026-11-16", "2026-11-17"]
    naive = dates_of(
        get(server, campaign_id=cid, send_id=sid, length=1, ending_at="2026-11-18T00:00:00")
    )
    assert naive == ["2026-11-18"]


def test_default_ending_at_is_the_sandbox_clock_today(server, catalog, clock):
    cid, sid, _ = pair_sent(catalog, 3)
    assert dates_of(get(server, campaign_id=cid, send_id=sid, length=1)) == ["2026-11-21"]
    clock.advance(timedelta(days=1))
    assert dates_of(get(server, campaign_id=cid, send_id=sid, length=1)) == ["2026-11-22"]


def test_days_follow_the_workspace_time_zone(clock):
    ny = Catalog.demo(TODAY, timezone="America/New_York")
    cid, sid, sent_at = ny.pairs()[-40]
    assert sent_at.utcoffset() == timedelta(hours=-5)
    with make_server(ny, clock) as srv:
        days = dates_of(
            get(srv, campaign_id=cid, send_id=sid, length=1, ending_at="2026-11-19T02:00:00Z")
        )
    assert days == ["2026-11-18"]


def test_every_day_present_zero_filled_and_dated(server, catalog):
    cid, sid, sent_at = pair_sent(catalog, 6)
    send_date = sent_at.date()
    end = send_date + timedelta(days=3)
    data = get(
        server,
        campaign_id=cid,
        send_id=sid,
        length=20,
        ending_at=f"{end.isoformat()}T23:59:59+00:00",
    ).json()["data"]
    assert [d["time"] for d in data] == [
        (end - timedelta(days=19 - n)).isoformat() for n in range(20)
    ]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["time"]) for d in data)
    before = [d for d in data if d["time"] < send_date.isoformat()]
    assert len(before) == 16
    active = data[-1]
    for zero in before:
        assert all(x == 0 for x in numbers(zero))
        # zero days show the send's channels with all-zero variation objects
        assert {c: [sorted(v) for v in vs] for c, vs in zero["messages"].items()} == {
            c: [sorted(v) for v in vs] for c, vs in active["messages"].items()
        }
    assert any(x > 0 for d in data[-4:] for x in numbers(d))


# ---- data ------------------------------------------------------------------------------------


def test_numbers_are_consistent_over_the_catalog_at_several_as_of(catalog):
    checked = 0
    for cid, sid, sent_at in catalog.pairs():
        end = sent_at.date() + timedelta(days=14)
        for hours in (-1, 2, 20, 30, 60, 130, 300):
            as_of = sent_at + timedelta(hours=hours)
            for day in catalog.series(cid, sid, length=15, ending_at_date=end, as_of=as_of):
                assert not day_problems(day), (cid, sid, hours, day_problems(day))
                checked += 1
    assert checked == len(catalog.pairs()) * 7 * 15


def test_window_totals_are_consistent(catalog):
    for cid, sid, _ in catalog.pairs():
        final = catalog.final_series(cid, sid)
        for channel, variations in final[0]["messages"].items():
            for i, v in enumerate(variations):
                if v["variation_name"] == CONTROL_GROUP:
                    continue
                total = {
                    k: sum(d["messages"][channel][i][k] for d in final) for k in v if k not in META
                }
                if channel == "email":
                    assert total["unique_opens"] <= total["delivered"] <= total["sent"]
                if channel.endswith("_push"):
                    assert total["total_opens"] <= total["delivered"]


def test_responses_over_http_are_consistent(server, catalog):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {DEMO_API_KEY}"
    for cid, sid, _ in catalog.pairs()[::7]:
        response = session.get(
            server.url + PATH, params={"campaign_id": cid, "send_id": sid, "length": 15}, timeout=5
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        for day in response.json()["data"]:
            assert not day_problems(day)


def test_restatement_is_monotone_and_settles_after_settle_days(catalog):
    restated = 0
    for cid, sid, sent_at in catalog.pairs()[::10]:
        final = catalog.final_series(cid, sid)
        end = sent_at.date() + timedelta(days=14)
        settled = datetime.combine(
            sent_at.date() + timedelta(days=5), datetime.min.time(), tzinfo=UTC
        ) + timedelta(days=catalog.settle_days)
        previous = None
        for hours in range(0, 13 * 24, 7):
            as_of = sent_at + timedelta(hours=hours)
            series = catalog.series(cid, sid, length=15, ending_at_date=end, as_of=as_of)
            flat = [numbers(day) for day in series]
            if previous is not None:
                assert all(a <= b for p, f in zip(previous, flat) for a, b in zip(p, f))
            previous = flat
            if as_of >= settled:
                assert series == final
        send_day_end = datetime.combine(
            sent_at.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
        )
        at_day_end = catalog.series(cid, sid, length=15, ending_at_date=end, as_of=send_day_end)
        restated += at_day_end[0] != final[0]  # the send day grew after it ended
    assert restated >= 25


def test_settle_days_is_configurable():
    short = Catalog.generate(
        7, start=TODAY - timedelta(days=20), days=21, sends=60, campaigns=10, settle_days=2
    )
    grew = 0
    for cid, sid, sent_at in short.pairs():
        final = short.final_series(cid, sid)
        end = sent_at.date() + timedelta(days=14)
        day_end = datetime.combine(
            sent_at.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC
        )
        at = short.series(
            cid, sid, length=15, ending_at_date=end, as_of=day_end + timedelta(days=2)
        )
        assert at[0] == final[0]  # the send day is final 2 days after it ended
        before = short.series(
            cid, sid, length=15, ending_at_date=end, as_of=day_end + timedelta(days=1.5)
        )
        grew += before[0] != final[0]
    assert grew >= 40
    with pytest.raises(ValueError):
        Catalog(settle_days=14)


def test_final_series_is_the_send_window_as_served_before_retention(server, catalog, clock):
    cid, sid, sent_at = pair_sent(catalog, 13)
    final = catalog.final_series(cid, sid)
    send_date = sent_at.date()
    assert [d["time"] for d in final] == [
        (send_date + timedelta(days=n)).isoformat() for n in range(15)
    ]
    clock.set(sent_at + timedelta(days=13, hours=23))
    data = get(
        server,
        campaign_id=cid,
        send_id=sid,
        length=15,
        ending_at=f"{(send_date + timedelta(days=14)).isoformat()}T23:59:59Z",
    ).json()
    assert data["data"] == json.loads(json.dumps(final))


# ---- retention -------------------------------------------------------------------------------


def test_retention_modes(fresh, clock):
    cid, sid, sent_at = pair_sent(fresh, 17)
    assert NOW > sent_at + timedelta(days=14)
    other_cid, other_sid, _ = pair_sent(fresh, 16)
    with make_server(fresh, clock) as srv:
        zeros = get(srv, campaign_id=cid, send_id=sid, length=15)
        assert zeros.status_code == 200
        data = zeros.json()["data"]
        assert len(data) == 15 and all(x == 0 for d in data for x in numbers(d))

        fresh.set_retention("empty")
        assert get(srv, campaign_id=cid, send_id=sid, length=15).json() == {
            "message": "success",
            "data": [],
        }

        fresh.set_retention("error", cid, sid)
        expired = get(srv, campaign_id=cid, send_id=sid, length=15)
        assert expired.status_code == 400
        assert "no longer available" in expired.json()["message"]
        # the override is per pair: another expired pair still follows the global mode
        assert get(srv, campaign_id=other_cid, send_id=other_sid, length=3).json()["data"] == []


def test_retention_starts_14_days_after_sent_at(fresh):
    cid, sid, sent_at = pair_sent(fresh, 10)
    fresh.set_retention("error")
    kwargs = {"length": 15, "ending_at_date": sent_at.date() + timedelta(days=14)}
    assert fresh.series(cid, sid, as_of=sent_at + timedelta(days=14), **kwargs)
    with pytest.raises(LookupError):
        fresh.series(cid, sid, as_of=sent_at + timedelta(days=14, seconds=1), **kwargs)


# ---- rate limit ------------------------------------------------------------------------------


def test_rate_limit_headers_are_lowercase_on_every_response(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    responses = [
        get(server, campaign_id=cid, send_id=sid, length=3),
        get(server, campaign_id=cid, send_id=sid, length=0),
        get(server, key="wrong", campaign_id=cid, send_id=sid, length=3),
        requests.get(server.url + "/campaigns/nope", timeout=5),
    ]
    assert [r.status_code for r in responses] == [200, 400, 401, 404]
    for response in responses:
        names = list(response.raw.headers.keys())
        assert all(name in names for name in RATE_HEADERS), names
        assert not any(n.startswith("X-RateLimit") for n in names)


def window_end(moment: float, size: int) -> int:
    return math.ceil((math.floor(moment / size) + 1) * size)


def test_budget_exhaustion_gives_429_and_reset_is_the_window_end(catalog, clock):
    cid, sid, _ = pair_sent(catalog, 3)
    with make_server(catalog, clock, rate_limit=RateLimit(5, 3600)) as srv:
        started = time.time()
        first = [get(srv, campaign_id=cid, send_id=sid, length=3) for _ in range(3)]
        # auth failures draw from the budget too
        first += [get(srv, key="bad", campaign_id=cid, send_id=sid, length=3) for _ in range(2)]
        over = get(srv, campaign_id=cid, send_id=sid, length=3)
        ended = time.time()
    assert [r.status_code for r in first] == [200, 200, 200, 401, 401]
    assert [r.headers["x-ratelimit-remaining"] for r in first] == ["4", "3", "2", "1", "0"]
    assert over.status_code == 429
    assert over.json() == {"message": "API rate limit exceeded"}
    assert "Retry-After" not in over.headers
    assert over.headers["x-ratelimit-limit"] == "5"
    assert over.headers["x-ratelimit-remaining"] == "0"
    reset = int(over.headers["x-ratelimit-reset"])
    assert reset in {window_end(started, 3600), window_end(ended, 3600)}  # top of the hour
    assert reset % 3600 == 0


def test_budget_comes_back_in_the_next_window(catalog, clock):
    cid, sid, _ = pair_sent(catalog, 3)
    with make_server(catalog, clock, rate_limit=RateLimit(2, 1)) as srv:
        statuses = []
        for _ in range(8):
            response = get(srv, campaign_id=cid, send_id=sid, length=1)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429 and statuses.count(200) >= 2
        reset = int(response.headers["x-ratelimit-reset"])
        assert 0 < reset - time.time() <= 1.0
        time.sleep(max(0.0, reset - time.time()) + 0.02)
        again = get(srv, campaign_id=cid, send_id=sid, length=1)
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == "1"


def test_reset_header_can_be_omitted_on_429(catalog, clock):
    cid, sid, _ = pair_sent(catalog, 3)
    with make_server(catalog, clock, rate_limit=RateLimit(1, 3600, send_reset=False)) as srv:
        ok = get(srv, campaign_id=cid, send_id=sid, length=1)
        over = get(srv, campaign_id=cid, send_id=sid, length=1)
    assert ok.status_code == 200 and "x-ratelimit-reset" in ok.headers
    assert over.status_code == 429 and "x-ratelimit-reset" not in over.headers


# ---- faults ----------------------------------------------------------------------------------

STORMY = Faults(
    seed=11,
    error_rate=0.2,
    drop_rate=0.1,
    drop_mode="mixed",
    malformed_rate=0.15,
    throttle_rate=0.05,
)


def outcome(srv: SandboxServer, cid: str, sid: str) -> str:
    """A request's outcome as a short label."""
    try:
        response = get(srv, campaign_id=cid, send_id=sid, length=2)
    except requests.exceptions.ChunkedEncodingError:
        return "mid_body"
    except requests.exceptions.ConnectionError:
        return "dropped"
    kind = response.headers["Content-Type"].split(";")[0]
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {kind} not-json"
    shape = (
        "ok"
        if isinstance(body.get("data"), list) and all("time" in d for d in body["data"])
        else "wrong-shape"
    )
    return f"{response.status_code} {kind} {shape if response.status_code == 200 else ''}"


def test_fault_decisions_are_a_function_of_seed_pair_and_attempt():
    again = Faults(
        **{
            **STORMY.to_dict(),
            "statuses": STORMY.statuses,
            "malformed_kinds": STORMY.malformed_kinds,
        }
    )
    first = [STORMY.decide("c", f"s{i}", n) for i in range(20) for n in range(1, 6)]
    assert first == [again.decide("c", f"s{i}", n) for i in range(20) for n in range(1, 6)]
    kinds = {f.kind for f in first}
    assert {"none", "status", "drop", "malformed"} <= kinds
    other = Faults(**{**STORMY.to_dict(), "seed": 12})
    assert first != [other.decide("c", f"s{i}", n) for i in range(20) for n in range(1, 6)]


def test_faults_over_http_do_not_depend_on_thread_interleaving(catalog, clock):
    pairs = [(c, s) for c, s, _ in catalog.pairs()[-60::10]]
    attempts = 8
    with make_server(catalog, clock, faults=STORMY) as srv:
        sequential = {p: [outcome(srv, *p) for _ in range(attempts)] for p in pairs}
    with make_server(catalog, clock, faults=STORMY) as srv:
        order = pairs[:]
        random.Random(3).shuffle(order)
        with cf.ThreadPoolExecutor(len(pairs)) as pool:
            futures = {
                p: pool.submit(lambda p=p: [outcome(srv, *p) for _ in range(attempts)])
                for p in order
            }
        concurrent = {p: f.result() for p, f in futures.items()}
        # one pair hit by many threads at once: the same outcomes, in some order
        srv.faults = STORMY
        with cf.ThreadPoolExecutor(8) as pool:
            hammered = list(pool.map(lambda _: outcome(srv, *pairs[0]), range(attempts)))
    assert concurrent == sequential
    assert sorted(hammered) == sorted(sequential[pairs[0]])
    labels = {label for runs in sequential.values() for label in runs}
    assert {"dropped", "200 application/json ok"} <= labels and len(labels) >= 5


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (503, "503 application/json "),
        (500, "500 application/json "),
        (429, "429 application/json "),
        ("drop", "dropped"),
        ("drop_mid_body", "mid_body"),
        ("truncated_json", "200 application/json not-json"),
        ("html_proxy_page", "502 text/html not-json"),
        ("wrong_shape", "200 application/json wrong-shape"),
        ("wrong_shape:data_not_list", "200 application/json wrong-shape"),
        ("wrong_shape:day_without_time", "200 application/json wrong-shape"),
    ],
)
def test_each_scripted_fault_then_normal_behaviour(server, catalog, step, expected):
    cid, sid, _ = pair_sent(catalog, 3)
    server.script(cid, sid, [step])
    assert outcome(server, cid, sid) == expected
    assert outcome(server, cid, sid) == "200 application/json ok"


def test_scripted_429_carries_rate_limit_headers(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    server.script(cid, sid, [429])
    response = get(server, campaign_id=cid, send_id=sid, length=1)
    assert response.status_code == 429 and response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["x-ratelimit-reset"]) > time.time()


def test_proxy_page_comes_without_braze_headers(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    server.script(cid, sid, ["html_proxy_page"])
    response = get(server, campaign_id=cid, send_id=sid, length=1)
    assert response.status_code == 502 and "<html>" in response.text
    assert "x-ratelimit-remaining" not in response.headers


def test_wrong_shapes_are_what_they_say(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    server.script(
        cid,
        sid,
        ["wrong_shape:data_missing", "wrong_shape:data_not_list", "wrong_shape:day_without_time"],
    )
    bodies = [get(server, campaign_id=cid, send_id=sid, length=2).json() for _ in range(3)]
    assert "data" not in bodies[0]
    assert isinstance(bodies[1]["data"], dict)
    assert "time" not in bodies[2]["data"][0] and "time" in bodies[2]["data"][1]


def test_script_all_applies_to_any_pair_and_pair_scripts_come_first(server, catalog):
    (c1, s1, _), (c2, s2, _) = pair_sent(catalog, 3), pair_sent(catalog, 5)
    server.script_all([502, 504])
    server.script(c1, s1, [500])
    statuses = [
        get(server, campaign_id=c, send_id=s, length=1).status_code
        for c, s in [(c1, s1), (c2, s2), (c1, s1), (c2, s2)]
    ]
    assert statuses == [500, 502, 504, 200]


def test_faults_can_be_swapped_at_runtime(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    server.faults = Faults(seed=1, error_rate=1.0, statuses=(503,))
    assert [get(server, campaign_id=cid, send_id=sid, length=1).status_code for _ in range(3)] == [
        503
    ] * 3
    server.faults = Faults()
    assert get(server, campaign_id=cid, send_id=sid, length=1).status_code == 200


def test_slow_fault_and_latency(catalog, clock):
    cid, sid, _ = pair_sent(catalog, 3)
    with make_server(catalog, clock, latency=(0.05, 0.1)) as srv:
        for _ in range(3):
            started = time.perf_counter()
            assert get(srv, campaign_id=cid, send_id=sid, length=1).status_code == 200
            assert 0.05 <= time.perf_counter() - started < 1.0
        srv.script(cid, sid, ["slow:0.4"])
        started = time.perf_counter()
        assert get(srv, campaign_id=cid, send_id=sid, length=1).status_code == 200
        assert time.perf_counter() - started >= 0.45
        srv.script(cid, sid, ["slow:2"])
        with pytest.raises(requests.exceptions.ReadTimeout):
            get(srv, campaign_id=cid, send_id=sid, length=1, timeout=0.5)


# ---- the rest of the surface -----------------------------------------------------------------


def test_unknown_path_is_404_and_other_methods_are_405(server):
    assert requests.get(server.url + "/nope", timeout=5).json() == {"message": "Not found"}
    posted = requests.post(server.url + PATH, json={}, timeout=5)
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET"


def test_stats_count_requests_per_status_and_pair(server, catalog):
    cid, sid, _ = pair_sent(catalog, 3)
    get(server, campaign_id=cid, send_id=sid, length=1)
    get(server, campaign_id=cid, send_id=sid, length=0)
    get(server, key="bad", campaign_id=cid, send_id=sid, length=1)
    stats = server.stats
    assert stats.total == 3 and stats.by_status == {200: 1, 400: 1, 401: 1}
    assert stats.by_pair == {(cid, sid): 3}
    assert [r.status for r in stats.log] == [200, 400, 401]
    stats.reset()
    assert stats.total == 0 and stats.by_pair == {}


def test_authorization_is_never_logged(server, catalog, caplog):
    cid, sid, _ = pair_sent(catalog, 3)
    with caplog.at_level(logging.DEBUG, logger="braze_sends.sandbox"):
        get(server, key="secret-key-42", campaign_id=cid, send_id=sid, length=1)
        get(server, campaign_id=cid, send_id=sid, length=1)
    assert PATH in caplog.text
    assert "secret-key-42" not in caplog.text and DEMO_API_KEY not in caplog.text


def test_admin_endpoints(fresh, clock):
    cid, sid, _ = pair_sent(fresh, 17)
    with make_server(fresh, clock) as srv:
        admin = srv.url + "/_sandbox/"
        get(srv, campaign_id=cid, send_id=sid, length=1)
        stats = requests.get(admin + "stats", timeout=5).json()
        assert stats["total"] == 1 and stats["by_status"] == {"200": 1}
        assert stats["by_pair"] == [{"campaign_id": cid, "send_id": sid, "requests": 1}]

        moved = requests.post(admin + "clock", json={"advance_seconds": 86400}, timeout=5)
        assert moved.json()["now"].startswith("2026-11-22T12:00")
        requests.post(admin + "clock", json={"now": "2026-11-30T08:00:00+00:00"}, timeout=5)
        assert dates_of(get(srv, campaign_id=cid, send_id=sid, length=1)) == ["2026-11-30"]

        requests.post(admin + "retention", json={"mode": "error"}, timeout=5)
        assert get(srv, campaign_id=cid, send_id=sid, length=1).status_code == 400
        requests.post(admin + "retention", json={"mode": "empty"}, timeout=5)
        assert get(srv, campaign_id=cid, send_id=sid, length=1).json()["data"] == []

        set_faults = requests.post(
            admin + "faults", json={"seed": 3, "error_rate": 1.0, "statuses": [504]}, timeout=5
        )
        assert set_faults.json()["statuses"] == [504]
        assert get(srv, campaign_id=cid, send_id=sid, length=1).status_code == 504
        requests.post(admin + "faults", json={}, timeout=5)
        requests.post(admin + "script", json={"steps": ["html_proxy_page"]}, timeout=5)
        assert get(srv, campaign_id=cid, send_id=sid, length=1).status_code == 502

        assert requests.post(admin + "faults", json={"error_rate": 7}, timeout=5).status_code == 400
        assert requests.post(admin + "retention", data="{not json", timeout=5).status_code == 400
        assert requests.post(admin + "stats/reset", timeout=5).json() == {"message": "success"}
        assert requests.get(admin + "stats", timeout=5).json()["total"] == 0


def test_sends_file(catalog, tmp_path: Path):
    path = tmp_path / "sends.csv"
    rows = catalog.write_sends_file(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "campaign_id,send_id,sent_at" and len(lines) == rows + 1 == 301
    cid, sid, sent_at = lines[1].split(",")
    assert datetime.fromisoformat(sent_at).utcoffset() is not None
    assert (cid, sid, datetime.fromisoformat(sent_at)) == catalog.pairs()[0]

    rows = catalog.write_sends_file(path, with_sent_at=False, as_of=NOW)
    lines = path.read_text().splitlines()
    assert lines[0] == "campaign_id,send_id"
    assert rows == len(lines) - 1 == sum(1 for p in catalog.pairs() if p[2] <= NOW) < 300


def test_added_send_with_a_new_channel_and_new_metrics(fresh, clock):
    cid = fresh.pairs()[0][0]
    sent_at = NOW - timedelta(days=6)
    fresh.add_send(
        campaign_id=cid,
        send_id="send_rcs_1",
        sent_at=sent_at,
        channels={"rcs": ["sent", "delivered", "read"], "email": None, "sms": []},
        extra_metrics={"new_metric": "mixed", "amp_clicks": "int"},
        extra_day_metrics={"new_day_metric": "float"},
    )
    with make_server(fresh, clock) as srv:
        data = get(srv, campaign_id=cid, send_id="send_rcs_1", length=7).json()["data"]
    assert data[0]["time"] == sent_at.date().isoformat()
    assert list(data[0]["messages"]) == ["rcs", "email", "sms"]
    assert data[0]["messages"]["sms"] == []
    rcs = [d["messages"]["rcs"][0] for d in data]
    assert rcs[0]["sent"] > 0
    assert all(v["read"] <= v["delivered"] <= v["sent"] for v in rcs)
    assert all(isinstance(v["amp_clicks"], int) for v in rcs)
    kinds = {type(v["new_metric"]) for v in rcs[:5]}
    assert kinds == {int, float}
    assert any(isinstance(v["new_metric"], float) and v["new_metric"] % 1 for v in rcs)
    assert all(isinstance(d["new_day_metric"], float) for d in data)
    assert "new_metric" in data[0]["messages"]["email"][0]

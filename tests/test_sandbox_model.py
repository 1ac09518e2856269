"""The sandbox's pure parts: data model, restatement curves, faults, rate-limit counter, clock."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from braze_sends.sandbox import (
    ACTIVITY_DAYS,
    CHANNELS,
    CONTROL_GROUP,
    Catalog,
    Faults,
    SandboxClock,
    UnknownCampaignError,
    UnknownSendError,
)
from braze_sends.sandbox.endpoint import ending_date
from braze_sends.sandbox.faults import latency_for, parse_step
from braze_sends.sandbox.ratelimit import FixedWindowLimiter, RateLimit
from braze_sends.sandbox.restatement import STAGES, booked_fractions

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.demo(TODAY)


@pytest.fixture(scope="module")
def finals(catalog) -> dict[tuple[str, str], list[dict]]:
    return {(c, s): catalog.final_series(c, s) for c, s, _ in catalog.pairs()}


# ---- catalog ---------------------------------------------------------------------------------


def test_demo_catalog_shape(catalog):
    pairs = catalog.pairs()
    assert len(pairs) == 300 and len(catalog.campaigns) == 40
    assert {c for c, _, _ in pairs} == set(catalog.campaigns)
    assert [p[2] for p in pairs] == sorted(p[2] for p in pairs)
    dates = {sent_at.date() for _, _, sent_at in pairs}
    assert min(dates) == TODAY - timedelta(days=20) and max(dates) == TODAY
    assert sum(catalog.is_expired(c, s, NOW) for c, s, _ in pairs) > 10
    for campaign_id, send_id, sent_at in pairs:
        assert UUID.fullmatch(campaign_id)
        assert send_id.isascii() and len(send_id) <= 64 and send_id.startswith("send_")
        assert sent_at.tzinfo is not None


def test_campaign_metadata(catalog):
    for campaign in catalog.campaigns.values():
        assert campaign.is_api_campaign and campaign.name and campaign.description
        assert 1 <= len(campaign.conversion_behaviors) <= 4
        for behavior in campaign.conversion_behaviors:
            assert behavior["type"] and behavior["window"] > 0
            if behavior["type"] == "Performs Custom Event":
                assert behavior["custom_event_name"]
        assert all(1 <= len(v) <= 3 for v in campaign.variations.values())
        assert set(campaign.messages) == {
            v.variation_api_id for vs in campaign.variations.values() for v in vs
        }
        assert campaign.created_at.tzinfo is not None
        assert isinstance(campaign.archived, bool) and campaign.schedule_type


def test_generation_is_deterministic_from_the_seed():
    kwargs = {"start": TODAY - timedelta(days=20), "days": 21, "sends": 40, "campaigns": 8}
    a, b, c = (
        Catalog.generate(7, **kwargs),
        Catalog.generate(7, **kwargs),
        Catalog.generate(8, **kwargs),
    )
    assert a.pairs() == b.pairs() != c.pairs()
    assert all(a.final_series(p[0], p[1]) == b.final_series(p[0], p[1]) for p in a.pairs())


def test_every_channel_and_its_quirks_appear(catalog, finals):
    seen: Counter[str] = Counter()
    controls = empties = ios_dynamic = 0
    for (campaign_id, _), series in finals.items():
        day = series[0]
        behaviors = len(catalog.campaigns[campaign_id].conversion_behaviors)
        expected = {"conversions"} | {f"conversions{i}" for i in range(1, behaviors)}
        assert {k for k in day if re.fullmatch(r"conversions\d?", k)} == expected
        for channel, variations in day["messages"].items():
            seen[channel] += bool(variations)
            empties += not variations
            controls += any(v["variation_name"] == CONTROL_GROUP for v in variations)
            for v in variations:
                assert {k for k in v if re.fullmatch(r"conversions\d?", k)} == expected
                if channel == "email" and v["variation_name"] != CONTROL_GROUP:
                    assert "machine_open" in v and "machine_amp_open" in v
                ios_dynamic += channel == "ios_push" and any(
                    re.fullmatch(r"(carousel_slide|notif_button)_\d+_\w+_click", k) for k in v
                )
    assert set(seen) == set(CHANNELS) and min(seen.values()) > 5
    assert 0.1 * len(finals) <= controls <= 0.3 * len(finals)
    assert empties > 10 and ios_dynamic > 5


def test_revenue_mixes_integer_zero_and_floats(finals):
    kinds = Counter()
    for series in finals.values():
        for day in series:
            revenue = day["revenue"]
            kinds[(type(revenue).__name__, revenue == 0)] += 1
            kinds["fraction"] += isinstance(revenue, float) and revenue % 1 != 0
    assert kinds[("int", True)] and kinds[("float", True)] and kinds[("float", False)]
    assert kinds["fraction"] > 0
    assert {k for k in kinds if k != "fraction"} == {
        ("int", True),
        ("float", True),
        ("float", False),
    }


def test_activity_happens_on_the_send_day_and_the_few_following(finals):
    late_delivery = 0
    for series in finals.values():
        for offset, day in enumerate(series):
            values = [
                x
                for vs in day["messages"].values()
                for v in vs
                for k, x in v.items()
                if k not in ("variation_name", "variation_api_id")
            ]
            if offset >= ACTIVITY_DAYS:
                assert not any(values)
            sent = [v.get("sent", 0) for vs in day["messages"].values() for v in vs]
            if offset >= 2:
                assert not any(sent)
            late_delivery += offset == 1 and any(sent)
        assert any(v for k, v in series[0].items() if k not in ("time", "messages"))
    assert late_delivery > 0  # evening sends finish after midnight


def test_series_matches_final_series_and_is_cheap(catalog, finals):
    pairs = catalog.pairs()[::3]
    started = time.perf_counter()
    calls = 0
    for campaign_id, send_id, sent_at in pairs * 10:
        end = sent_at.date() + timedelta(days=14)
        catalog.series(
            campaign_id,
            send_id,
            length=15,
            ending_at_date=end,
            as_of=sent_at + timedelta(hours=calls % 300),
        )
        calls += 1
    per_call = (time.perf_counter() - started) / calls
    assert per_call < 0.002  # typically ~0.2 ms
    campaign_id, send_id, sent_at = pairs[0]
    settled = catalog.series(
        campaign_id,
        send_id,
        length=15,
        as_of=sent_at + timedelta(days=12),
        ending_at_date=sent_at.date() + timedelta(days=14),
    )
    assert settled == finals[(campaign_id, send_id)]


def test_catalog_lookup_and_add_errors(catalog):
    campaign_id, send_id, sent_at = catalog.pairs()[0]
    with pytest.raises(UnknownCampaignError):
        catalog.send("nope", send_id)
    with pytest.raises(UnknownSendError):
        catalog.send(campaign_id, "nope")
    with pytest.raises(UnknownCampaignError):
        catalog.add_send(campaign_id="nope", send_id="s", sent_at=NOW)
    with pytest.raises(ValueError):
        catalog.add_send(campaign_id=campaign_id, send_id=send_id, sent_at=sent_at)
    with pytest.raises(ValueError):
        catalog.add_send(campaign_id=campaign_id, send_id="x" * 65, sent_at=NOW)
    with pytest.raises(ValueError):
        catalog.add_send(campaign_id=campaign_id, send_id="naive", sent_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        catalog.set_retention("forever")


def test_added_campaign_with_four_behaviors_gets_conversions3():
    catalog = Catalog(seed=3, timezone="Europe/Paris")
    behaviors = [{"type": "Makes Any Purchase", "window": 86400}] * 4
    campaign = catalog.add_campaign(
        "camp-1", conversion_behaviors=behaviors, channels=("android_push",)
    )
    sent_at = datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Paris"))  # DST night
    catalog.add_send(campaign_id=campaign.id, send_id="s1", sent_at=sent_at, control_group=True)
    final = catalog.final_series("camp-1", "s1")
    assert final[0]["time"] == "2026-03-29" and "conversions3_by_send_time" in final[0]
    variations = final[0]["messages"]["android_push"]
    assert variations[-1]["variation_name"] == CONTROL_GROUP
    assert "sent" not in variations[-1] and variations[-1]["enrolled"] > 0
    assert final[0]["revenue"] > 0  # purchases make revenue


# ---- restatement curves ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(0, 86_000),
    length=st.floats(1, 86_400),
    settle=st.floats(0, 13.9),
    a=st.floats(-86_400, 20 * 86_400),
    b=st.floats(-86_400, 20 * 86_400),
)
def test_booked_fractions_are_ordered_monotone_and_final_after_settling(
    start, length, settle, a, b
):
    end = start + length
    early, late = sorted((a, b))
    f_early = booked_fractions(early, start, end, settle)
    f_late = booked_fractions(late, start, end, settle)
    for fractions in (f_early, f_late):
        assert len(fractions) == STAGES and all(0.0 <= f <= 1.0 for f in fractions)
        assert all(x >= y for x, y in itertools.pairwise(fractions))  # slower stages lag
    assert all(x <= y for x, y in zip(f_early, f_late))
    assert booked_fractions(end + settle * 86400, start, end, settle) == (1.0,) * STAGES
    assert booked_fractions(start, start, end, settle) == (0.0,) * STAGES


# ---- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"error_rate": 1.5},
        {"error_rate": 0.6, "drop_rate": 0.6},
        {"drop_mode": "sideways"},
        {"malformed_kinds": ("bad",)},
        {"slow_seconds": -1},
        {"error_rate": 0.1, "statuses": ()},
    ],
)
def test_invalid_fault_settings_are_refused(options):
    with pytest.raises(ValueError):
        Faults(**options)


def test_fault_rates_are_respected():
    faults = Faults(seed=5, error_rate=0.3, drop_rate=0.1, slow_rate=0.2, slow_seconds=1.5)
    decisions = [faults.decide("c", f"s{i}", n) for i in range(200) for n in range(1, 6)]
    kinds = Counter(d.kind for d in decisions)
    assert 250 <= kinds["status"] <= 350 and 70 <= kinds["drop"] <= 130
    assert {d.status for d in decisions if d.kind == "status"} == {500, 502, 503, 504}
    assert 150 <= sum(d.delay == 1.5 for d in decisions) <= 250
    assert Faults().decide("c", "s", 1).kind == "none"
    with pytest.raises(ValueError):
        Faults.from_dict({"eror_rate": 0.1})


def test_scripted_steps_parse_or_fail_clearly():
    assert parse_step(503).status == 503 and parse_step("429").status == 429
    assert parse_step(200).kind == parse_step("ok").kind == "none"
    assert parse_step("drop").variant == "before_headers"
    assert parse_step("drop:mid_body") == parse_step("drop_mid_body")
    assert parse_step("slow:0.25").delay == 0.25 and parse_step("slow", 3.0).delay == 3.0
    assert parse_step("wrong_shape").variant == "wrong_shape:data_missing"
    for bad in ("explode", "wrong_shape:round", "drop:later", 999):
        with pytest.raises(ValueError):
            parse_step(bad)


def test_latency_is_deterministic_within_bounds():
    values = [latency_for((0.1, 0.3), 7, "c", "s", n) for n in range(1, 200)]
    assert values == [latency_for((0.1, 0.3), 7, "c", "s", n) for n in range(1, 200)]
    assert all(0.1 <= v <= 0.3 for v in values) and max(values) - min(values) > 0.15


# ---- rate-limit counter ----------------------------------------------------------------------


def test_fixed_windows_align_to_multiples_of_the_window():
    now = [7200.0 + 10]
    limiter = FixedWindowLimiter(RateLimit(2, 3600), wall=lambda: now[0])
    states = [limiter.hit() for _ in range(3)]
    assert [s.allowed for s in states] == [True, True, False]
    assert [s.remaining for s in states] == [1, 0, 0]
    assert {s.reset for s in states} == {10800}
    now[0] = 10800.0
    assert limiter.hit().allowed and limiter.hit().reset == 14400
    odd = FixedWindowLimiter(RateLimit(1, 1.5), wall=lambda: 3.1)
    assert odd.hit().reset == 5  # window [3.0, 4.5) ends at 4.5, rounded up


def test_limiter_counts_exactly_under_threads():
    limiter = FixedWindowLimiter(RateLimit(500, 3600), wall=lambda: 100.0)
    allowed = []

    def work():
        allowed.extend(limiter.hit().allowed for _ in range(100))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 500 and len(allowed) == 800


# ---- clock and ending_at -----------------------------------------------------------------------


def test_clock_set_advance_freeze_unfreeze():
    clock = SandboxClock(NOW, frozen=True)
    assert clock.now() == NOW and clock.now().tzinfo is not None
    clock.advance(timedelta(hours=2))
    assert clock.now() == NOW + timedelta(hours=2)
    clock.set(datetime(2026, 12, 1, 9, tzinfo=ZoneInfo("America/New_York")))
    assert clock.now() == datetime(2026, 12, 1, 14, tzinfo=UTC)
    clock.unfreeze()
    time.sleep(0.02)
    running = clock.now()
    assert running > datetime(2026, 12, 1, 14, tzinfo=UTC)
    clock.freeze()
    assert clock.now() == clock.now() >= running
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 1))


def test_clock_is_thread_safe():
    clock = SandboxClock(NOW, frozen=True)
    threads = [
        threading.Thread(target=lambda: [clock.advance(timedelta(seconds=1)) for _ in range(100)])
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.now() == NOW + timedelta(seconds=800)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, date(2026, 11, 21)),
        ("2026-11-18", date(2026, 11, 17)),
        ("2026-11-18T23:59:59-05:00", date(2026, 11, 19)),
        ("2026-11-18T23:59:59Z", date(2026, 11, 18)),
        ("2026-11-18T12:00:00", date(2026, 11, 18)),
    ],
)
def test_ending_date(raw, expected):
    assert ending_date(raw, NOW, ZoneInfo("UTC")) == expected

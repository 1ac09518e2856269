"""The client's retry policy and error mapping, with a scripted transport and an injected sleep.

These are unit tests of the policy (fast, no waiting). The same behaviour over real HTTP against
the sandbox is covered in test_pipeline.py and test_faults.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from braze_sends import errors
from braze_sends.client import BrazeClient, RetryPolicy
from braze_sends.ratelimit import RateLimiter

KEY = "unit-test-key-7f3a9c"
ENDING = datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)
OK = {"message": "success", "data": [{"time": "2026-11-20", "messages": {}}]}


class Script(BaseAdapter):
    """Answers each request with the next scripted reply: (status, body, headers) or an exception."""

    def __init__(self, replies):
        super().__init__()
        self.replies = list(replies)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, body, headers = (*reply, {})[:3] if isinstance(reply, tuple) else (200, reply, {})
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


class FakeTime:
    def __init__(self, start=1_800_000_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def wall(self):
        return self.now

    def mono(self):
        return self.now


def client_for(replies, policy=None):
    clock = FakeTime()
    limiter = RateLimiter(10**9 / 3600 * 3600, clock=clock.mono, wall=clock.wall, sleep=clock.sleep)
    script = Script(replies)
    client = BrazeClient(
        "https://braze.invalid",
        KEY,
        retry=policy or RetryPolicy(),
        limiter=limiter,
        sleep=clock.sleep,
        wall=clock.wall,
        transport=script,
    )
    return client, script, clock


def pull(client):
    return client.send_data_series("camp 1", "send&2", length=3, ending_at=ENDING)


def test_success_sends_the_key_only_as_a_bearer_header_and_encodes_ids():
    client, script, _ = client_for([OK])
    assert pull(client) == OK["data"]
    request = script.requests[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in request.url
    assert "campaign_id=camp+1" in request.url and "send_id=send%262" in request.url
    assert "ending_at=2026-11-20T23%3A59%3A59%2B00%3A00" in request.url
    assert "length=3" in request.url


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_growing_backoff(status):
    client, script, clock = client_for([(status, {"message": "oops"})] * 3 + [OK])
    assert pull(client) == OK["data"]
    assert len(script.requests) == 4
    assert clock.sleeps[0] < clock.sleeps[1] < clock.sleeps[2]
    assert client.stats.retries == 3


def test_timeouts_and_dropped_connections_are_retried():
    client, script, _ = client_for(
        [requests.ReadTimeout("slow"), requests.ConnectionError("reset by peer"), OK]
    )
    assert pull(client) == OK["data"]
    assert len(script.requests) == 3


def test_429_waits_until_the_reset_header_then_succeeds():
    clock_start = FakeTime().now
    reset = clock_start + 30
    client, _script, clock = client_for(
        [(429, {"message": "rate"}, {"x-ratelimit-reset": str(int(reset))}), OK]
    )
    assert pull(client) == OK["data"]
    waited = clock.now - clock_start
    assert 30 <= waited <= 30 + 3.1 + 1  # the reset, plus bounded jitter


def test_429_reset_header_is_read_case_insensitively():
    start = FakeTime().now
    client, _, clock = client_for([(429, {}, {"X-RateLimit-Reset": str(int(start + 12))}), OK])
    pull(client)
    assert clock.now - start >= 12


def test_429_without_reset_header_falls_back_to_a_fixed_wait():
    policy = RetryPolicy(rate_limit_fallback=7.0)
    client, _, clock = client_for([(429, {}), OK], policy)
    start = clock.now
    pull(client)
    assert 7.0 <= clock.now - start <= 8.5


@pytest.mark.parametrize(
    "status, kind, fix",
    [
        (400, errors.BadRequestError, "campaign_id and send_id"),
        (401, errors.AuthenticationError, "SOURCES__BRAZE__API_KEY"),
        (403, errors.PermissionDeniedError, "sends.data_series"),
        (404, errors.NotFoundError, "base_url"),
    ],
)
def test_client_errors_are_never_retried_and_say_what_to_fix(status, kind, fix):
    client, script, clock = client_for([(status, {"message": f"Invalid API key: {KEY}"})])
    with pytest.raises(kind) as caught:
        pull(client)
    assert len(script.requests) == 1 and clock.sleeps == []
    message = str(caught.value)
    assert fix in message and f"HTTP {status}" in message
    assert KEY not in message  # Braze echoes the key in its 401 body: it must be redacted
    if status != 404:
        assert "campaign_id='camp 1' send_id='send&2'" in message


def test_attempts_are_bounded_and_the_last_error_is_raised():
    client, script, _ = client_for([(503, {"message": "down"})] * 10, RetryPolicy(max_attempts=4))
    with pytest.raises(errors.ServerError) as caught:
        pull(client)
    assert len(script.requests) == 4
    assert "HTTP 503" in str(caught.value) and "'down'" in str(caught.value)


def test_total_wait_is_bounded():
    start = FakeTime().now
    policy = RetryPolicy(max_attempts=10, max_total_wait=100)
    replies = [(429, {}, {"x-ratelimit-reset": str(int(start + 60 * (i + 1)))}) for i in range(10)]
    client, script, clock = client_for(replies, policy)
    with pytest.raises(errors.RateLimitedError):
        pull(client)
    assert sum(clock.sleeps) <= 100
    assert len(script.requests) < 10


@pytest.mark.parametrize(
    "body, content_type, fragment",
    [
        (b'{"message": "success", "data": [{"ti', "application/json", "not JSON"),
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", "not JSON"),
        (b'{"message": "success"}', "application/json", "without a `data` list"),
        (b'{"message": "success", "data": {}}', "application/json", "without a `data` list"),
    ],
)
def test_mangled_success_bodies_are_retried_then_reported(body, content_type, fragment):
    bad = (200, body, {"Content-Type": content_type})
    client, script, _ = client_for([bad] * 3, RetryPolicy(max_attempts=3))
    with pytest.raises(errors.UnexpectedResponseError) as caught:
        pull(client)
    assert len(script.requests) == 3 and fragment in str(caught.value)


@pytest.mark.parametrize(
    "body, expected",
    [
        # orjson parses; what it refuses (integers past 64 bits) goes to requests' parser.
        (
            '{"data": [{"time": "2026-11-20", "name": "caf\u00e9 \u2713"}]}'.encode(),
            [{"time": "2026-11-20", "name": "caf\u00e9 \u2713"}],
        ),
        (
            b'{"data": [{"time": "2026-11-20", "sent": 36893488147419103232}]}',
            [{"time": "2026-11-20", "sent": 36893488147419103232}],
        ),
    ],
)
def test_success_bodies_parse_as_the_standard_parser_reads_them(body, expected):
    client, _, _ = client_for([(200, body)])
    assert pull(client) == expected


def test_html_error_page_from_a_proxy_is_named_as_such():
    page = (
        502,
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        {"Content-Type": "text/html"},
    )
    client, _, _ = client_for([page], RetryPolicy(max_attempts=1))
    with pytest.raises(errors.ServerError) as caught:
        pull(client)
    assert "HTML page" in str(caught.value)


def test_missing_key_is_a_configuration_error():
    with pytest.raises(errors.ConfigurationError, match="SOURCES__BRAZE__API_KEY"):
        BrazeClient("https://braze.invalid", "  ")


def test_repr_and_errors_never_show_the_key():
    client, _, _ = client_for(
        [requests.ConnectionError(f"boom {KEY}")], RetryPolicy(max_attempts=1)
    )
    assert KEY not in repr(client)
    with pytest.raises(errors.TransportError) as caught:
        pull(client)
    assert KEY not in str(caught.value)


def test_429s_wait_for_the_reset_without_using_up_the_attempts_for_failures():
    start = FakeTime().now
    replies = [(429, {}, {"x-ratelimit-reset": str(int(start + i + 1))}) for i in range(8)]
    client, script, _ = client_for([*replies, (503, {}), OK], RetryPolicy(max_attempts=3))
    assert pull(client) == OK["data"]
    assert len(script.requests) == 10  # 8 rate-limited waits, one 503, then the answer


def test_429s_are_capped_too():
    start = FakeTime().now
    replies = [(429, {}, {"x-ratelimit-reset": str(int(start + i + 1))}) for i in range(20)]
    client, script, _ = client_for(replies, RetryPolicy(max_rate_limited=5))
    with pytest.raises(errors.RateLimitedError):
        pull(client)
    assert len(script.requests) == 5

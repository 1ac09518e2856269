"""Channels and the final daily values of their variation objects (pure, driven by a seeded RNG).

A generator receives the variation's messages sent per day (``sent[k]`` for day offset ``k`` from
the send date) and the share of engagement happening on each day (``weights[k]``, summing to at
most 1), and returns the variation's metrics, each as ``(key, stage, kind, per-day values)``, in
the order Braze lists them, plus the variation's *reach* (delivered, or impressions) that
conversions are drawn from.

Subset metrics are computed per day from their parent (``floor(parent_day * ratio)``), so
``delivered <= sent``, ``unique_opens <= opens``, ``direct_opens <= total_opens`` and
``delivered + bounces <= sent`` hold on every day, and stay true at every ``as_of`` because a subset
never belongs to a faster stage than its parent (see ``restatement``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from braze_sends.sandbox.restatement import DELIVERY, ENGAGEMENT, SENT, UNIQUE

PUSH_CHANNELS = ("ios_push", "android_push", "kindle_push", "web_push")
CHANNELS: tuple[str, ...] = (
    *PUSH_CHANNELS,
    "email",
    "sms",
    "whats_app",
    "webhook",
    "content_cards",
    "trigger_in_app_message",
)

# Value kinds: how a metric is rendered in JSON.
INT = 0  # always an integer
MONEY = 1  # float rounded to cents; a zero is emitted as `0` on some days and `0.0` on others
FLOAT = 2  # always a float (rounded to cents)
MIXED = 3  # an integer on even day offsets, a non-integral float on odd ones
KINDS = {"int": INT, "float": FLOAT, "mixed": MIXED}

Metric = tuple[str, int, int, list[float]]
Generator = Callable[[random.Random, list[int], list[float], dict], tuple[list[Metric], int]]


def ratio(values: Sequence[float], share: float) -> list[int]:
    """Per-day subset of ``values``: ``floor(value * share)``."""
    return [int(v * share) for v in values]


def spread(total: float, weights: Sequence[float]) -> list[int]:
    """Spread ``total`` events over days: ``floor(total * weight)`` per day."""
    return [int(total * w) for w in weights]


def _push(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    undelivered_share = rng.uniform(0.02, 0.12)
    delivered = ratio(sent, rng.uniform(0.80, 1.0 - undelivered_share))
    undelivered = ratio(sent, undelivered_share)
    delivery_failed = ratio(undelivered, rng.uniform(0.2, 0.6))
    bounces = ratio(undelivered, rng.uniform(0.1, 0.4))
    total_opens = spread(sum(delivered) * rng.uniform(0.03, 0.15), weights)
    direct_opens = ratio(total_opens, rng.uniform(0.4, 0.9))
    body_clicks = ratio(direct_opens, rng.uniform(0.5, 1.0))
    metrics: list[Metric] = [
        ("sent", SENT, INT, sent),
        ("delivered", DELIVERY, INT, delivered),
        ("undelivered", DELIVERY, INT, undelivered),
        ("delivery_failed", DELIVERY, INT, delivery_failed),
        ("direct_opens", ENGAGEMENT, INT, direct_opens),
        ("total_opens", ENGAGEMENT, INT, total_opens),
        ("bounces", DELIVERY, INT, bounces),
        ("body_clicks", ENGAGEMENT, INT, body_clicks),
    ]
    for n, title in enumerate(extra.get("carousel_titles", ()), start=1):
        values = ratio(body_clicks, rng.uniform(0.1, 0.5))
        metrics.append((f"carousel_slide_{n}_{title}_click", ENGAGEMENT, INT, values))
    for n, title in enumerate(extra.get("button_titles", ()), start=1):
        values = ratio(total_opens, rng.uniform(0.02, 0.2))
        metrics.append((f"notif_button_{n}_{title}_click", ENGAGEMENT, INT, values))
    return metrics, sum(delivered)


def _email(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    bounce_share = rng.uniform(0.005, 0.05)
    delivered = ratio(sent, rng.uniform(0.9, 1.0 - bounce_share))
    bounces = ratio(sent, bounce_share)
    opens = spread(sum(delivered) * rng.uniform(0.15, 0.6), weights)
    clicks = ratio(opens, rng.uniform(0.05, 0.3))
    machine_open = ratio(opens, rng.uniform(0.1, 0.5))
    metrics: list[Metric] = [
        ("sent", SENT, INT, sent),
        ("opens", ENGAGEMENT, INT, opens),
        ("unique_opens", UNIQUE, INT, ratio(opens, rng.uniform(0.6, 0.95))),
        ("clicks", ENGAGEMENT, INT, clicks),
        ("unique_clicks", UNIQUE, INT, ratio(clicks, rng.uniform(0.6, 0.95))),
        ("unsubscribes", UNIQUE, INT, ratio(opens, rng.uniform(0.0, 0.02))),
        ("bounces", DELIVERY, INT, bounces),
        ("delivered", DELIVERY, INT, delivered),
        ("reported_spam", UNIQUE, INT, ratio(opens, rng.uniform(0.0, 0.005))),
        ("machine_open", ENGAGEMENT, INT, machine_open),
        ("machine_amp_open", ENGAGEMENT, INT, ratio(machine_open, rng.uniform(0.0, 0.1))),
    ]
    return metrics, sum(delivered)


def _sms(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    sent_to_carrier = ratio(sent, rng.uniform(0.97, 1.0))
    rejected_share, failed_share = rng.uniform(0.0, 0.03), rng.uniform(0.0, 0.03)
    delivered = ratio(sent_to_carrier, rng.uniform(0.85, 1.0 - rejected_share - failed_share))
    reach = sum(delivered)
    metrics: list[Metric] = [
        ("sent", SENT, INT, sent),
        ("sent_to_carrier", SENT, INT, sent_to_carrier),
        ("delivered", DELIVERY, INT, delivered),
        ("rejected", DELIVERY, INT, ratio(sent_to_carrier, rejected_share)),
        ("delivery_failed", DELIVERY, INT, ratio(sent_to_carrier, failed_share)),
        ("clicks", ENGAGEMENT, INT, spread(reach * rng.uniform(0.02, 0.12), weights)),
        ("opt_out", ENGAGEMENT, INT, spread(reach * rng.uniform(0.0, 0.01), weights)),
        ("help", ENGAGEMENT, INT, spread(reach * rng.uniform(0.0, 0.003), weights)),
    ]
    return metrics, reach


def _whats_app(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    failed_share = rng.uniform(0.0, 0.05)
    delivered = ratio(sent, rng.uniform(0.85, 1.0 - failed_share))
    metrics: list[Metric] = [
        ("sent", SENT, INT, sent),
        ("delivered", DELIVERY, INT, delivered),
        ("failed", DELIVERY, INT, ratio(sent, failed_share)),
        ("read", ENGAGEMENT, INT, spread(sum(delivered) * rng.uniform(0.4, 0.9), weights)),
    ]
    return metrics, sum(delivered)


def _webhook(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    errors = ratio(sent, rng.choice((0.0, 0.0, 0.01, 0.05)))
    return [("sent", SENT, INT, sent), ("errors", DELIVERY, INT, errors)], sum(sent) - sum(errors)


def _content_cards(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    impressions = spread(sum(sent) * rng.uniform(0.2, 0.7), weights)
    clicks = ratio(impressions, rng.uniform(0.02, 0.15))
    dismissals = ratio(impressions, rng.uniform(0.01, 0.1))
    unique = rng.uniform(0.7, 0.95)
    metrics: list[Metric] = [
        ("sent", SENT, INT, sent),
        ("total_clicks", ENGAGEMENT, INT, clicks),
        ("total_dismissals", ENGAGEMENT, INT, dismissals),
        ("total_impressions", ENGAGEMENT, INT, impressions),
        ("unique_clicks", UNIQUE, INT, ratio(clicks, unique)),
        ("unique_dismissals", UNIQUE, INT, ratio(dismissals, unique)),
        ("unique_impressions", UNIQUE, INT, ratio(impressions, unique)),
    ]
    return metrics, sum(impressions)


def _in_app_message(rng: random.Random, sent: list[int], weights: list[float], extra: dict):
    impressions = spread(sum(sent) * rng.uniform(0.2, 0.8), weights)
    clicks = ratio(impressions, rng.uniform(0.05, 0.3))
    first_share = rng.uniform(0.3, 0.7)
    metrics: list[Metric] = [
        ("impressions", ENGAGEMENT, INT, impressions),
        ("clicks", ENGAGEMENT, INT, clicks),
        ("first_button_clicks", ENGAGEMENT, INT, ratio(clicks, first_share)),
        ("second_button_clicks", ENGAGEMENT, INT, ratio(clicks, (1.0 - first_share) * 0.8)),
    ]
    return metrics, sum(impressions)


GENERATORS: dict[str, Generator] = {
    **{channel: _push for channel in PUSH_CHANNELS},
    "email": _email,
    "sms": _sms,
    "whats_app": _whats_app,
    "webhook": _webhook,
    "content_cards": _content_cards,
    "trigger_in_app_message": _in_app_message,
}
# Metrics counted at the moment of sending (their unique_recipients follow `sent`);
# the in-app message has no `sent`: its recipients are those who saw it.
RECIPIENTS_FROM_SENT = frozenset(CHANNELS) - {"trigger_in_app_message"}


def custom_metrics(
    rng: random.Random, keys: Sequence[str], sent: list[int]
) -> tuple[list[Metric], int]:
    """Metrics of a channel the sandbox has no model for (e.g. ``rcs``: sent, delivered, read).

    The first key counts messages sent; each following key is a per-day subset of the previous
    one (``delivered <= sent``, ``read <= delivered``), booked at the delivery stage.
    """
    metrics: list[Metric] = []
    values: list[int] = sent
    for index, key in enumerate(keys):
        if index:
            values = ratio(values, rng.uniform(0.5, 0.95))
        metrics.append((key, SENT if index == 0 else DELIVERY, INT, values))
    return metrics, sum(values) if keys else 0


def extra_metric(
    rng: random.Random, key: str, kind: int, base: float, weights: list[float]
) -> Metric:
    """An extra metric (a key Braze might add one day) of the given kind, spread like engagement."""
    values: list[float] = []
    for day, weight in enumerate(weights):
        value = base * rng.uniform(0.01, 0.2) * weight
        if kind == INT or (kind == MIXED and day % 2 == 0):
            values.append(int(value))
        elif kind == MIXED:
            values.append(int(value) + 0.5 if weight else 0.0)
        else:
            values.append(round(value, 2))
    return (key, ENGAGEMENT, kind, values)

"""A send's final numbers, computed once, and the day objects rendered from them at any ``as_of``.

``build_plan`` draws everything from the send's own seeded RNG: per variation and per day offset
(0..``ACTIVITY_DAYS - 1`` from the send date) the final value of every metric. ``SendPlan.render``
then turns a list of dates into day objects of the ``/sends/data_series`` response:

- a day with activity shows each metric as ``floor(final * booked fraction)`` (see
  ``restatement``); from ``settle_days`` after the end of the day it shows the final values;
- every other day (before the send date, after the activity days, or not started yet at
  ``as_of``) is a *zero day*: the send's channels, each with its variation objects carrying
  every key with a zero value (empty channel arrays stay empty), and zero day-level fields.

Day-level ``conversions*``, ``conversions*_by_send_time``, ``unique_recipients`` and ``revenue``
are the sums over the day's variation objects, control group excluded, at every ``as_of``.
A zero revenue is emitted as the JSON integer ``0`` on some dates and as ``0.0`` on others.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from braze_sends.sandbox import channels as ch
from braze_sends.sandbox.restatement import (
    ALL_BOOKED,
    BY_SEND_TIME,
    CONVERSION,
    ENGAGEMENT,
    NONE_BOOKED,
    SENT,
    booked_fractions,
    day_bounds,
)

ACTIVITY_DAYS = 5  # a send's numbers move on its send date and the 4 following days
CONTROL_GROUP = "Control Group"


@dataclass(frozen=True)
class VariationSpec:
    """A message variation a send goes out with."""

    variation_api_id: str
    name: str
    carousel_titles: tuple[str, ...] = ()
    button_titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of a send: its variations, and its metric keys when the sandbox has no model."""

    channel: str
    variations: tuple[VariationSpec, ...]
    metric_keys: tuple[str, ...] | None = None  # None: the channel's standard metrics


@dataclass(slots=True)
class _Variation:
    head: dict[str, str]
    keys: tuple[str, ...]
    stages: tuple[int, ...]
    kinds: tuple[tuple[int, ...], ...]  # per day offset (MIXED resolved to INT or FLOAT)
    finals: tuple[tuple[float, ...], ...]  # per day offset, typed as rendered
    totals_at: tuple[int, ...]  # positions of the day-level keys in `keys`
    control: bool
    zeros: tuple[dict, dict] = field(default_factory=lambda: ({}, {}))  # revenue 0.0 / 0


def conversion_keys(behaviors: int) -> tuple[str, ...]:
    """``conversions``, ``conversions_by_send_time``, ``conversions1``, ... for n behaviors."""
    keys: list[str] = []
    for index in range(max(1, min(behaviors, 4))):
        name = "conversions" if index == 0 else f"conversions{index}"
        keys += [name, f"{name}_by_send_time"]
    return tuple(keys)


def zero_revenue_is_int(day: date, salt: int) -> bool:
    """Whether a zero revenue is emitted as ``0`` (else ``0.0``) on this date for this send."""
    return (day.toordinal() * 7 + salt) % 3 == 0


def _decay(rng: random.Random, low: float, high: float, days: int) -> list[float]:
    factor = rng.uniform(low, high)
    raw = [factor**k for k in range(days)]
    total = sum(raw)
    return [w / total for w in raw] + [0.0] * (ACTIVITY_DAYS - days)


def _on_send_days(total: int, spill: float) -> list[int]:
    later = int(total * spill)
    return [total - later, later] + [0] * (ACTIVITY_DAYS - 2)


class _Builder:
    """Draws the final values of one send (all randomness from one RNG, in a fixed order)."""

    def __init__(self, rng: random.Random, behaviors: Sequence[dict], spill: float, late: bool):
        self.rng = rng
        self.behaviors = list(behaviors)[:4] or [{"type": "Starts Session", "window": 259200}]
        self.spill = spill
        self.engagement = _decay(rng, 0.25, 0.5, ACTIVITY_DAYS)
        if late:  # sent in the evening: most engagement happens the next day
            self.engagement[0] *= 0.4
            total = sum(self.engagement)
            self.engagement = [w / total for w in self.engagement]
        self.conversion_decay = rng.uniform(0.5, 0.8)
        self.purchase_value = rng.choice((12.5, 19.99, 24.0, 7.25, 49.5, 99.0))

    def common(self, reach: int, recipients: ch.Metric, rate: float) -> list[ch.Metric]:
        """revenue, unique_recipients and the conversions of every conversion behavior."""
        rng, conversions = self.rng, []
        purchase = next(
            (i for i, b in enumerate(self.behaviors) if "Purchase" in str(b.get("type"))), None
        )
        for index, behavior in enumerate(self.behaviors):
            window_days = max(1, math.ceil(float(behavior.get("window", 259200)) / 86400))
            days = min(ACTIVITY_DAYS, window_days + 1)
            weights = _decay(rng, self.conversion_decay, self.conversion_decay, days)
            share = rate * (1.0 if index == 0 else rng.uniform(0.2, 0.8))
            conversions.append(ch.spread(reach * share, weights))
        if purchase is not None:
            purchases = conversions[purchase]
        elif rng.random() < 0.5:
            purchases = [0] * ACTIVITY_DAYS
        else:
            purchases = ch.spread(reach * rng.uniform(0.001, 0.01), _decay(rng, 0.5, 0.8, 3))
        revenue = [round(n * self.purchase_value, 2) for n in purchases]
        metrics: list[ch.Metric] = [("revenue", CONVERSION, ch.MONEY, revenue), recipients]
        for key, values in zip(conversion_keys(len(self.behaviors))[::2], conversions):
            total, spill = sum(values), self.spill
            metrics.append((key, CONVERSION, ch.INT, values))
            metrics.append(
                (f"{key}_by_send_time", BY_SEND_TIME, ch.INT, _on_send_days(total, spill))
            )
        return metrics

    def variation(self, channel: ChannelSpec, sent: list[int]) -> tuple[list[ch.Metric], int]:
        if channel.metric_keys is not None or channel.channel not in ch.GENERATORS:
            keys = channel.metric_keys if channel.metric_keys is not None else ("sent", "delivered")
            metrics, reach = ch.custom_metrics(self.rng, keys, sent)
            base = sent
        else:
            generate = ch.GENERATORS[channel.channel]
            spec = channel.variations[0]
            extra = {"carousel_titles": spec.carousel_titles, "button_titles": spec.button_titles}
            metrics, reach = generate(self.rng, sent, self.engagement, extra)
            base = sent if channel.channel in ch.RECIPIENTS_FROM_SENT else metrics[0][3]
        stage = SENT if base is sent else ENGAGEMENT
        recipients = ("unique_recipients", stage, ch.INT, ch.ratio(base, self.rng.uniform(0.9, 1)))
        rate = self.rng.uniform(0.005, 0.06)
        return metrics + self.common(reach, recipients, rate), reach


def _variation(
    head: dict[str, str],
    metrics: list[ch.Metric],
    day_keys: Sequence[str],
    salt: int,
    send_date: date,
    control: bool,
) -> _Variation:
    keys = tuple(m[0] for m in metrics)
    kinds, finals = [], []
    for offset in range(ACTIVITY_DAYS):
        zero_int = zero_revenue_is_int(send_date + timedelta(days=offset), salt)
        day_kinds, day_values = [], []
        for _, _, kind, values in metrics:
            if kind == ch.MIXED:
                kind = ch.INT if offset % 2 == 0 else ch.FLOAT
            value = values[offset]
            if kind == ch.INT:
                value = int(value)
            elif kind == ch.MONEY and value == 0 and zero_int:
                value = 0
            else:
                value = float(value)
            day_kinds.append(kind)
            day_values.append(value)
        kinds.append(tuple(day_kinds))
        finals.append(tuple(day_values))
    zero_float = {**head, **{m[0]: (0.0 if m[2] in (ch.MONEY, ch.FLOAT) else 0) for m in metrics}}
    zero_int = {**zero_float, "revenue": 0} if "revenue" in keys else dict(zero_float)
    return _Variation(
        head=head,
        keys=keys,
        stages=tuple(m[1] for m in metrics),
        kinds=tuple(kinds),
        finals=tuple(finals),
        totals_at=tuple(keys.index(k) for k in day_keys),
        control=control,
        zeros=(zero_float, zero_int),
    )


class SendPlan:
    """The final numbers of one send and the rendering of its day objects."""

    def __init__(
        self,
        send_date: date,
        sent_ts: float,
        tz: ZoneInfo,
        salt: int,
        layout: list[tuple[str, list[_Variation]]],
        day_keys: tuple[str, ...],
        day_extras: list[ch.Metric],
    ):
        self.send_date = send_date
        self.salt = salt
        self.layout = layout
        self.day_keys = day_keys
        self.day_extras = day_extras
        bounds = [day_bounds(send_date + timedelta(days=k), tz) for k in range(ACTIVITY_DAYS)]
        self.activity = [(max(start, sent_ts), end) for start, end in bounds]
        self.final_totals = [self._totals(k, ALL_BOOKED) for k in range(ACTIVITY_DAYS)]

    def _totals(self, offset: int, booked: tuple[float, ...]) -> dict[str, float]:
        sums = [0.0] * len(self.day_keys)
        for _, variations in self.layout:
            for v in variations:
                if v.control:
                    continue
                finals = v.finals[offset]
                for j, at in enumerate(v.totals_at):
                    value = finals[at] * booked[v.stages[at]]
                    sums[j] += round(value, 2) if v.kinds[offset][at] != ch.INT else int(value)
        totals = dict(zip(self.day_keys, (int(s) for s in sums)))
        revenue = round(sums[-1], 2)
        day = self.send_date + timedelta(days=offset)
        totals["revenue"] = 0 if revenue == 0 and zero_revenue_is_int(day, self.salt) else revenue
        for key, stage, kind, values in self.day_extras:
            if kind == ch.MIXED:
                kind = ch.INT if offset % 2 == 0 else ch.FLOAT
            value = values[offset] * booked[stage]
            totals[key] = int(value) if kind == ch.INT else float(round(value, 2))
        return totals

    def _zero_day(self, day: date) -> dict:
        zero_int = zero_revenue_is_int(day, self.salt)
        messages = {
            channel: [dict(v.zeros[zero_int]) for v in variations]
            for channel, variations in self.layout
        }
        totals = dict.fromkeys(self.day_keys, 0)
        totals["revenue"] = 0 if zero_int else 0.0
        for key, _, kind, _ in self.day_extras:
            totals[key] = 0.0 if kind == ch.FLOAT else 0
        return {"time": day.isoformat(), "messages": messages, **totals}

    def _active_day(self, day: date, offset: int, booked: tuple[float, ...]) -> dict:
        messages: dict[str, list[dict]] = {}
        if booked is ALL_BOOKED:
            for channel, variations in self.layout:
                messages[channel] = [
                    {**v.head, **dict(zip(v.keys, v.finals[offset]))} for v in variations
                ]
            totals = self.final_totals[offset]
        else:
            zero_int = zero_revenue_is_int(day, self.salt)
            for channel, variations in self.layout:
                objects = []
                for v in variations:
                    obj = dict(v.head)
                    for key, value, stage, kind in zip(
                        v.keys, v.finals[offset], v.stages, v.kinds[offset]
                    ):
                        value = value * booked[stage]
                        if kind == ch.INT:
                            obj[key] = int(value)
                        else:
                            value = round(value, 2)
                            obj[key] = 0 if value == 0 and zero_int and kind == ch.MONEY else value
                    objects.append(obj)
                messages[channel] = objects
            totals = self._totals(offset, booked)
        return {"time": day.isoformat(), "messages": messages, **totals}

    def render(self, days: Sequence[date], as_of: float | None, settle_days: float) -> list[dict]:
        """Day objects for ``days`` as seen at ``as_of`` (epoch seconds; None: final values)."""
        out = []
        for day in days:
            offset = (day - self.send_date).days
            if 0 <= offset < ACTIVITY_DAYS:
                if as_of is None:
                    booked = ALL_BOOKED
                else:
                    start, end = self.activity[offset]
                    booked = booked_fractions(as_of, start, end, settle_days)
                if booked is not NONE_BOOKED:
                    out.append(self._active_day(day, offset, booked))
                    continue
            out.append(self._zero_day(day))
        return out


def build_plan(
    rng: random.Random,
    *,
    sent_at: datetime,
    tz: ZoneInfo,
    behaviors: Sequence[dict],
    layout: Sequence[ChannelSpec],
    control_channel: str | None,
    audience: int,
    extra_metrics: dict[str, int],
    extra_day_metrics: dict[str, int],
) -> SendPlan:
    """Draw the final values of a send.

    Args:
        rng: the send's own RNG (seeded from the catalog seed and the pair).
        sent_at: aware send time; its date in ``tz`` is the send date.
        behaviors: the campaign's conversion behaviors (1..4 conversion keys).
        layout: the send's channels in response order; a channel without variations is
            rendered as an empty array.
        control_channel: channel whose array also carries the control group, if any.
        audience: number of users targeted.
        extra_metrics / extra_day_metrics: extra keys on variation / day objects and their kind.
    """
    local = sent_at.astimezone(tz)
    late = local.hour >= 20
    spill = rng.uniform(0.05, 0.3) if local.hour >= 21 else 0.0
    builder = _Builder(rng, behaviors, spill, late)
    day_keys = (*conversion_keys(len(builder.behaviors)), "unique_recipients", "revenue")
    salt = rng.randrange(1 << 30)
    send_date = local.date()
    rendered: list[tuple[str, list[_Variation]]] = []
    total_reach = 0
    for channel in layout:
        variations: list[_Variation] = []
        channel_audience = int(audience * rng.uniform(0.3, 1.0))
        shares = [rng.uniform(0.5, 1.5) for _ in channel.variations]
        for spec, share in zip(channel.variations, shares):
            sent = _on_send_days(int(channel_audience * share / sum(shares)), spill)
            one = ChannelSpec(channel.channel, (spec,), channel.metric_keys)
            metrics, reach = builder.variation(one, sent)
            total_reach += reach
            for key, kind in extra_metrics.items():
                metrics.append(ch.extra_metric(rng, key, kind, reach, builder.engagement))
            head = {"variation_name": spec.name, "variation_api_id": spec.variation_api_id}
            variations.append(_variation(head, metrics, day_keys, salt, send_date, False))
        if channel.channel == control_channel:
            enrolled_total = int(audience * rng.uniform(0.05, 0.15))
            enrolled = _on_send_days(enrolled_total, spill)
            recipients = ("unique_recipients", SENT, ch.INT, enrolled)
            rate = rng.uniform(0.002, 0.03)
            metrics = [("enrolled", SENT, ch.INT, enrolled)]
            metrics += builder.common(enrolled_total, recipients, rate)
            head = {"variation_name": CONTROL_GROUP, "variation_api_id": _control_id(rng)}
            variations.append(_variation(head, metrics, day_keys, salt, send_date, True))
        rendered.append((channel.channel, variations))
    day_extras = [
        ch.extra_metric(rng, key, kind, total_reach, builder.engagement)
        for key, kind in extra_day_metrics.items()
    ]
    return SendPlan(send_date, sent_at.timestamp(), tz, salt, rendered, day_keys, day_extras)


def _control_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))

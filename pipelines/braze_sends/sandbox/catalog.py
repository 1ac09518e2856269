"""The sandbox's data model: campaigns, their sends, and each send's daily analytics.

Everything is deterministic from the seed. The catalog never reads the clock: callers pass
``as_of``, the moment the data is observed. What a send's series looks like at a given ``as_of``
(restatement, settling, zero days) is described in ``plan`` and ``restatement``; retention is
handled here: once ``as_of`` is more than 14 days after ``sent_at`` the send's analytics are gone
and ``series`` answers per the retention mode (``"zeros"``, ``"empty"`` or ``"error"``).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from braze_sends.sandbox.campaigns import Campaign, make_campaign, make_variations, new_id
from braze_sends.sandbox.channels import CHANNELS, KINDS
from braze_sends.sandbox.plan import ChannelSpec, SendPlan, VariationSpec, build_plan
from braze_sends.sandbox.restatement import DEFAULT_SETTLE_DAYS, MAX_SETTLE_DAYS

RETENTION_DAYS = 14
WINDOW_DAYS = RETENTION_DAYS + 1  # send date .. send date + 14
RETENTION_MODES = ("zeros", "empty", "error")


class CatalogError(LookupError):
    """Base class of the catalog's lookup errors."""


class UnknownCampaignError(CatalogError):
    """No campaign has this id."""


class UnknownSendError(CatalogError):
    """The campaign exists but has no send with this id."""


class SendExpiredError(CatalogError):
    """The send is past retention and the retention mode is ``"error"``."""


@dataclass
class Send:
    """One send of a campaign; ``channels=None`` means "drawn from the campaign's channels"."""

    campaign_id: str
    send_id: str
    sent_at: datetime
    channels: Mapping[str, Sequence[str] | None] | None = None
    extra_metrics: dict[str, int] = field(default_factory=dict)
    extra_day_metrics: dict[str, int] = field(default_factory=dict)
    control_group: bool | None = None
    audience: int | None = None


def _kinds(metrics: Iterable[str] | Mapping[str, str] | None) -> dict[str, int]:
    if metrics is None:
        return {}
    items = metrics.items() if isinstance(metrics, Mapping) else ((k, "int") for k in metrics)
    try:
        return {key: KINDS[kind] for key, kind in items}
    except KeyError as exc:
        raise ValueError(f"metric kind must be one of {sorted(KINDS)}, got {exc}") from None


class Catalog:
    """Campaigns and sends of a sandbox workspace, and their analytics at any ``as_of``."""

    def __init__(
        self,
        campaigns: Iterable[Campaign] = (),
        sends: Iterable[Send] = (),
        *,
        seed: int = 7,
        timezone: str = "UTC",
        settle_days: float = DEFAULT_SETTLE_DAYS,
        retention: str = "zeros",
    ):
        if not 0 <= settle_days < MAX_SETTLE_DAYS:
            raise ValueError(f"settle_days must be within 0..{MAX_SETTLE_DAYS} (exclusive)")
        self.seed = seed
        self.tz = ZoneInfo(timezone)
        self.settle_days = float(settle_days)
        self.campaigns: dict[str, Campaign] = {c.id: c for c in campaigns}
        self._sends: dict[tuple[str, str], Send] = {}
        self._plans: dict[tuple[str, str], SendPlan] = {}
        self._retention: dict[tuple[str, str], str] = {}
        self.retention = "zeros"
        self.set_retention(retention)
        self._rng = random.Random(f"braze-sandbox|{seed}|extra")
        for send in sends:
            self._add(send)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        seed: int = 7,
        *,
        start: date,
        days: int,
        sends: int,
        campaigns: int,
        timezone: str = "UTC",
        settle_days: float = DEFAULT_SETTLE_DAYS,
        retention: str = "zeros",
    ) -> Catalog:
        """A workspace of ``campaigns`` API campaigns and ``sends`` sends dated over
        ``start .. start + days - 1`` (workspace time zone). Every campaign gets a send when
        ``sends >= campaigns``, and campaigns cycle through every channel."""
        if days < 1 or campaigns < 1 or sends < 0:
            raise ValueError("days and campaigns must be >= 1, sends >= 0")
        rng = random.Random(f"braze-sandbox|{seed}")
        catalog = cls(seed=seed, timezone=timezone, settle_days=settle_days, retention=retention)
        made = [make_campaign(rng, i, start) for i in range(campaigns)]
        catalog.campaigns.update((c.id, c) for c in made)
        for index in range(sends):
            campaign = made[index] if index < campaigns else rng.choice(made)
            day = start + timedelta(days=rng.randrange(days))
            moment = time(rng.randrange(24), rng.randrange(60), rng.randrange(60))
            sent_at = datetime.combine(day, moment, tzinfo=catalog.tz)
            send_id = f"send_{rng.getrandbits(96):024x}"
            catalog._add(Send(campaign.id, send_id, sent_at))
        return catalog

    @classmethod
    def demo(cls, today: date, seed: int = 7, *, timezone: str = "UTC") -> Catalog:
        """The demo workspace: 300 sends over 40 campaigns, sent over the last 20 days and today
        (so the oldest are already past retention)."""
        return cls.generate(
            seed,
            start=today - timedelta(days=20),
            days=21,
            sends=300,
            campaigns=40,
            timezone=timezone,
        )

    def add_campaign(
        self,
        campaign_id: str | None = None,
        *,
        name: str | None = None,
        conversion_behaviors: Sequence[dict] | None = None,
        channels: Sequence[str] = ("email",),
    ) -> Campaign:
        """Add an API campaign (id and metadata drawn from the catalog's RNG unless given)."""
        campaign = make_campaign(self._rng, len(self.campaigns), date(2026, 1, 1))
        campaign.variations = {c: make_variations(self._rng, c) for c in channels}
        campaign.id = campaign_id or campaign.id
        campaign.name = name or campaign.name
        if conversion_behaviors is not None:
            if not 1 <= len(conversion_behaviors) <= 4:
                raise ValueError("a campaign has 1 to 4 conversion behaviors")
            campaign.conversion_behaviors = tuple(conversion_behaviors)
        self.campaigns[campaign.id] = campaign
        return campaign

    def add_send(
        self,
        *,
        campaign_id: str,
        send_id: str,
        sent_at: datetime,
        channels: Mapping[str, Sequence[str] | None] | Sequence[str] | None = None,
        extra_metrics: Iterable[str] | Mapping[str, str] | None = None,
        extra_day_metrics: Iterable[str] | Mapping[str, str] | None = None,
        control_group: bool | None = None,
        audience: int | None = None,
        retention: str | None = None,
    ) -> Send:
        """Add a send to an existing campaign.

        Args:
            channels: None for channels drawn from the campaign; else channel -> metric keys,
                where None means the channel's standard metrics (``["sent", "delivered"]`` for a
                channel the sandbox has no model of), a list of keys makes a custom channel
                (first key = messages sent, each next one a subset of the previous), and ``[]``
                an empty channel array. A plain list of channel names means standard metrics.
            extra_metrics: extra keys on every variation object (control group excluded), as
                names (integers) or name -> ``"int"`` | ``"float"`` | ``"mixed"`` (an integer
                on even day offsets, a non-integral float on odd ones).
            extra_day_metrics: the same for day objects.
            control_group: force a control group on or off (default: ~20% of sends).
            retention: retention mode for this pair (default: the catalog's).
        """
        if not isinstance(channels, (Mapping, type(None))):
            channels = dict.fromkeys(channels)
        send = Send(
            campaign_id,
            send_id,
            sent_at,
            channels,
            _kinds(extra_metrics),
            _kinds(extra_day_metrics),
            control_group,
            audience,
        )
        self._add(send)
        if retention is not None:
            self.set_retention(retention, campaign_id, send_id)
        return send

    def _add(self, send: Send) -> None:
        if send.campaign_id not in self.campaigns:
            raise UnknownCampaignError(send.campaign_id)
        if not (0 < len(send.send_id) <= 64 and send.send_id.isascii()):
            raise ValueError("send_id must be ASCII, 1 to 64 characters")
        if send.sent_at.tzinfo is None:
            raise ValueError("sent_at must be timezone-aware")
        key = (send.campaign_id, send.send_id)
        if key in self._sends:
            raise ValueError(f"send {key} already exists")
        self._sends[key] = send

    # ---- lookups -------------------------------------------------------------------------

    def pairs(self) -> list[tuple[str, str, datetime]]:
        """Every ``(campaign_id, send_id, sent_at)``, ordered by ``sent_at``."""
        return sorted(
            ((s.campaign_id, s.send_id, s.sent_at) for s in self._sends.values()),
            key=lambda p: (p[2], p[0], p[1]),
        )

    def send(self, campaign_id: str, send_id: str) -> Send:
        """The send of a pair; raises ``UnknownCampaignError`` / ``UnknownSendError``."""
        send = self._sends.get((campaign_id, send_id))
        if send is None:
            if campaign_id not in self.campaigns:
                raise UnknownCampaignError(campaign_id)
            raise UnknownSendError(send_id)
        return send

    # ---- retention -----------------------------------------------------------------------

    def set_retention(
        self, mode: str, campaign_id: str | None = None, send_id: str | None = None
    ) -> None:
        """Set the retention mode globally, or for one pair when both ids are given."""
        if mode not in RETENTION_MODES:
            raise ValueError(f"retention mode must be one of {RETENTION_MODES}, got {mode!r}")
        if campaign_id is None and send_id is None:
            self.retention = mode
        else:
            self.send(str(campaign_id), str(send_id))
            self._retention[(str(campaign_id), str(send_id))] = mode

    def retention_mode(self, campaign_id: str, send_id: str) -> str:
        return self._retention.get((campaign_id, send_id), self.retention)

    def is_expired(self, campaign_id: str, send_id: str, as_of: datetime) -> bool:
        """Whether Braze no longer keeps this send's analytics at ``as_of``."""
        sent_at = self.send(campaign_id, send_id).sent_at
        return as_of > sent_at + timedelta(days=RETENTION_DAYS)

    # ---- series --------------------------------------------------------------------------

    def _plan(self, send: Send) -> SendPlan:
        key = (send.campaign_id, send.send_id)
        plan = self._plans.get(key)
        if plan is None:  # a concurrent build computes the same plan; either one is kept
            plan = self._build(send)
            self._plans[key] = plan
        return plan

    def _build(self, send: Send) -> SendPlan:
        rng = random.Random(f"braze-sandbox|{self.seed}|{send.campaign_id}|{send.send_id}")
        campaign = self.campaigns[send.campaign_id]
        layout: list[ChannelSpec] = []
        if send.channels is None:
            names = list(campaign.channels)
            chosen = [names[0]] + [c for c in names[1:] if rng.random() < 0.5][:2]
            layout = [ChannelSpec(c, campaign.variations[c]) for c in CHANNELS if c in chosen]
            if rng.random() < 0.15:
                empty = rng.choice([c for c in CHANNELS if c not in chosen])
                layout.append(ChannelSpec(empty, ()))
        else:
            for channel, keys in send.channels.items():
                variations = campaign.variations.get(channel) or tuple(
                    VariationSpec(new_id(rng), f"Variant {chr(65 + n)}")
                    for n in range(rng.randint(1, 3))
                )
                if keys is not None and not keys:
                    layout.append(ChannelSpec(channel, ()))
                else:
                    custom = None if keys is None else tuple(keys)
                    layout.append(ChannelSpec(channel, variations, custom))
        control = send.control_group if send.control_group is not None else rng.random() < 0.2
        non_empty = [c.channel for c in layout if c.variations]
        audience = send.audience or int(2 ** rng.uniform(8, 15))
        return build_plan(
            rng,
            sent_at=send.sent_at,
            tz=self.tz,
            behaviors=campaign.conversion_behaviors,
            layout=layout,
            control_channel=non_empty[0] if control and non_empty else None,
            audience=audience,
            extra_metrics=send.extra_metrics,
            extra_day_metrics=send.extra_day_metrics,
        )

    def series(
        self,
        campaign_id: str,
        send_id: str,
        *,
        length: int,
        ending_at_date: date,
        as_of: datetime,
    ) -> list[dict]:
        """The ``data`` of ``/sends/data_series``: ``length`` days ending on ``ending_at_date``,
        as observed at ``as_of`` (retention applies).

        Raises:
            UnknownCampaignError, UnknownSendError: the pair does not exist.
            SendExpiredError: past retention with the ``"error"`` retention mode.
        """
        if length < 1:
            raise ValueError("length must be >= 1")
        send = self.send(campaign_id, send_id)
        days = [ending_at_date - timedelta(days=n) for n in range(length - 1, -1, -1)]
        observed: float | None = as_of.timestamp()
        if self.is_expired(campaign_id, send_id, as_of):
            mode = self.retention_mode(campaign_id, send_id)
            if mode == "error":
                raise SendExpiredError(f"{campaign_id}/{send_id}")
            if mode == "empty":
                return []
            observed = float("-inf")  # zeros: every day a zero day
        return self._plan(send).render(days, observed, self.settle_days)

    def final_series(self, campaign_id: str, send_id: str) -> list[dict]:
        """The send's final truth over its window (send date .. send date + 14), ignoring
        retention: what ``series`` returns once everything has settled."""
        plan = self._plan(self.send(campaign_id, send_id))
        days = [plan.send_date + timedelta(days=n) for n in range(WINDOW_DAYS)]
        return plan.render(days, None, self.settle_days)

    def send_date(self, campaign_id: str, send_id: str) -> date:
        """The send's date in the workspace time zone."""
        return self.send(campaign_id, send_id).sent_at.astimezone(self.tz).date()

    # ---- sends file ----------------------------------------------------------------------

    def write_sends_file(
        self, path: str | Path, *, with_sent_at: bool = True, as_of: datetime | None = None
    ) -> int:
        """Write the pairs as CSV (``campaign_id,send_id[,sent_at]``); returns the row count.

        ``sent_at`` is ISO-8601 with offset in the workspace time zone. With ``as_of``, only
        sends with ``sent_at <= as_of`` are written.
        """
        rows = [p for p in self.pairs() if as_of is None or p[2] <= as_of]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["campaign_id", "send_id", "sent_at"][: 3 if with_sent_at else 2])
            for campaign_id, send_id, sent_at in rows:
                row = [campaign_id, send_id]
                if with_sent_at:
                    row.append(sent_at.astimezone(self.tz).isoformat())
                writer.writerow(row)
        return len(rows)

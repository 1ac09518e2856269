"""Generated API campaigns: ids, names, tags, conversion behaviors and message variations."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from braze_sends.sandbox.channels import CHANNELS
from braze_sends.sandbox.plan import VariationSpec

_THEMES = (
    "Spring",
    "Weekend",
    "Flash",
    "Welcome",
    "Win-back",
    "Loyalty",
    "Holiday",
    "Cart",
    "Price Drop",
    "Back in Stock",
    "Weekly",
    "Renewal",
)
_KINDS = ("Sale", "Digest", "Reminder", "Offer", "Series", "Update", "Alert", "Nudge")
_TAGS = ("promo", "onboarding", "retention", "transactional", "weekly", "vip", "experiment")
_EVENTS = (
    "checkout_completed",
    "added_to_cart",
    "subscription_started",
    "trial_started",
    "profile_completed",
    "app_rated",
)
_WINDOWS = (86400, 259200, 259200, 604800, 2592000)
_TITLES = ("shoes", "bags", "hats", "deals", "new", "top")


@dataclass
class Campaign:
    """An API campaign, with the metadata of ``/campaigns/details``."""

    id: str
    name: str
    description: str
    tags: tuple[str, ...]
    created_at: datetime
    conversion_behaviors: tuple[dict, ...]
    variations: dict[str, tuple[VariationSpec, ...]]  # channel -> message variations
    archived: bool = False
    enabled: bool = True
    draft: bool = False
    schedule_type: str = "api_triggered"
    is_api_campaign: bool = True

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.variations)

    @property
    def messages(self) -> dict[str, dict[str, str]]:
        """Message variations keyed by ``variation_api_id`` (``channel``, ``name``)."""
        return {
            v.variation_api_id: {"channel": channel, "name": v.name}
            for channel, variations in self.variations.items()
            for v in variations
        }


def new_id(rng: random.Random) -> str:
    """A 36-character uuid-like id drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_campaign(rng: random.Random, index: int, start: date) -> Campaign:
    """The ``index``-th campaign of a generated workspace (channels cycle through all of them)."""
    name = f"{rng.choice(_THEMES)} {rng.choice(_KINDS)} {index + 1}"
    behaviors = []
    for _ in range(rng.randint(1, 4)):
        window = rng.choice(_WINDOWS)
        kind = rng.random()
        if kind < 0.5:
            event = rng.choice(_EVENTS)
            behaviors.append(
                {"type": "Performs Custom Event", "custom_event_name": event, "window": window}
            )
        elif kind < 0.8:
            behaviors.append({"type": "Makes Any Purchase", "window": window})
        else:
            behaviors.append({"type": "Starts Session", "window": window})
    others = [c for c in CHANNELS if c != CHANNELS[index % len(CHANNELS)]]
    chosen = [CHANNELS[index % len(CHANNELS)], *rng.sample(others, rng.randint(0, 3))]
    variations = {c: make_variations(rng, c) for c in chosen}
    created = datetime.combine(
        start - timedelta(days=rng.randint(30, 400)), time(), tzinfo=UTC
    ) + timedelta(seconds=rng.randrange(86400))
    return Campaign(
        id=new_id(rng),
        name=name,
        description=f"API campaign: {name.lower()}",
        tags=tuple(rng.sample(_TAGS, rng.randint(0, 3))),
        created_at=created,
        conversion_behaviors=tuple(behaviors),
        variations=variations,
        archived=rng.random() < 0.05,
        schedule_type="api_triggered",
    )


def make_variations(rng: random.Random, channel: str) -> tuple[VariationSpec, ...]:
    """1 to 3 message variations; iOS ones sometimes with carousel slides and buttons."""
    specs = []
    for n in range(rng.randint(1, 3)):
        carousel = buttons = ()
        if channel == "ios_push" and rng.random() < 0.4:
            carousel = tuple(rng.sample(_TITLES, rng.randint(2, 3)))
        if channel == "ios_push" and rng.random() < 0.4:
            buttons = tuple(rng.sample(_TITLES, rng.randint(1, 2)))
        specs.append(VariationSpec(new_id(rng), f"Variant {chr(65 + n)}", carousel, buttons))
    return tuple(specs)

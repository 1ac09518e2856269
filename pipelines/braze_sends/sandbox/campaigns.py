"""Generated API campaigns: ids, names, tags, conversion behaviors and message variations.

Also the campaign's answers of ``GET /campaigns/list`` (``list_row``) and
``GET /campaigns/details`` (``details``), as Braze shapes them.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Sequence
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
    updated_at: datetime | None = None  # None: never edited since created
    teams: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.variations)

    @property
    def last_edited(self) -> datetime:
        return self.updated_at or self.created_at

    def edit(self, at: datetime, **changes: object) -> None:
        """Change fields as a dashboard user would (e.g. ``name=``), stamping ``updated_at``."""
        for name, value in changes.items():
            if name in ("id", "created_at", "updated_at") or not hasattr(self, name):
                raise ValueError(f"cannot edit {name!r}")
            setattr(self, name, value)
        self.updated_at = at

    def list_row(self) -> dict:
        """The campaign as a row of ``/campaigns/list``."""
        return {
            "id": self.id,
            "last_edited": _iso(self.last_edited),
            "name": self.name,
            "is_api_campaign": self.is_api_campaign,
            "tags": list(self.tags),
        }

    def details(self, sent_at: Sequence[datetime]) -> dict:
        """The body of ``/campaigns/details`` (``sent_at``: its sends' times, up to now)."""
        return {
            "message": "success",
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.last_edited),
            "archived": self.archived,
            "draft": self.draft,
            "enabled": self.enabled,
            "has_post_launch_draft": False,
            "name": self.name,
            "description": self.description,
            "schedule_type": self.schedule_type,
            "channels": list(self.channels),
            "first_sent": _iso(min(sent_at)) if sent_at else None,
            "last_sent": _iso(max(sent_at)) if sent_at else None,
            "tags": list(self.tags),
            "teams": list(self.teams),
            "messages": self.messages,
            "conversion_behaviors": [dict(b) for b in self.conversion_behaviors],
        }

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
    campaign = Campaign(
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
    # Drawn from a hash, not from `rng`, so every other generated value stays as it was.
    edited_days = _unit(campaign.id, "edited") * (start - created.date()).days
    campaign.updated_at = created + timedelta(days=edited_days)
    return campaign


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of ``parts``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


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

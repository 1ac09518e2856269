"""The registry of pairs: every pair ever given is remembered in pipeline state.

State layout (`dlt.current.source_state()`): `registry`, one compressed text (zlib, base64) of
the JSON `{campaign_id: {send_id: SendRecord.to_state()}}`. Later scheduled runs need no sends
file; a new file adds pairs; a repeated pair is harmless, and a `sent_at` given later corrects
the record.

Why one compressed text: dlt decodes, hashes and re-encodes the whole pipeline state several times
per load (its extract, normalize and load steps each read the state file), holding ~17x the
state's size in memory at once, for every chunk. As plain JSON the registry is ~500 bytes a pair,
so a run's peak grew with its pairs (490 MB at 20,000; 454 MB compressed, 8x smaller). Earlier
versions kept the plain dict under `sends`; it is read, then folded into `registry`.

The archive: a send final or expired for `ARCHIVE_AFTER` never changes again, yet the registry
only grows (every send of every day, for years), and every chunk of every run reads it. So such
sends leave the registry: their campaigns go in `archived_campaigns`, their totals in `archived`
(counts per status, days, requests), and the pairs themselves stay only where they already are,
in the warehouse's `sends` table (its row was loaded, final, with the state that finished it).
Not in pipeline state: dlt holds ~17x its state in memory at every step of every load, so state
must not grow with sends (`make bench`: with 100,000 archived pairs kept as compressed text in
state, as the previous version did, every load took 2.4 s and 273 MB; without, 0.6 s, 171 MB).
An archived send stays known: a sends file that lists it again does not register it again
(`archive_candidates`, then `warehouse.finished_pairs` asks the `sends` table), `status` counts
it, its campaign keeps its metadata, and its row in `sends` stays as it was.
Planning, pulling and saving a chunk read none of it (measured: with 100,000 finished sends kept
live, every chunk took 2.8-5.1 s and ~1 GB of Python heap to read and write the registry).
"""

from __future__ import annotations

import base64
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from braze_sends import lifecycle
from braze_sends.lifecycle import SendRecord
from braze_sends.sends_file import SendPair

Records = dict[tuple[str, str], SendRecord]


STATE_KEY = "registry"
# An earlier version kept archived pairs here as compressed text lines; `retire_legacy_archive`
# drops it once the `sends` table has confirmed them.
ARCHIVE_KEY = "archive"
CAMPAIGNS_KEY = "archived_campaigns"
TOTALS_KEY = "archived"
_LEGACY_KEY = "sends"
# Past the longest alarm `status` raises for an expired send by default (7 days), with room.
ARCHIVE_AFTER = timedelta(days=30)


def load_records(state: dict[str, Any]) -> Records:
    """Every registered pair's record from pipeline state, but the archived ones."""
    stored = _decode(state[STATE_KEY]) if STATE_KEY in state else {}
    return {
        (campaign_id, send_id): SendRecord.from_state(campaign_id, send_id, data)
        for layout in (state.get(_LEGACY_KEY, {}), stored)
        for campaign_id, sends in layout.items()
        for send_id, data in sends.items()
    }


def save_records(
    state: dict[str, Any], records: Iterable[SendRecord], *, now: datetime | None = None
) -> set[tuple[str, str]]:
    """Write records (new or changed ones) back into pipeline state; with `now`, move the sends
    finished for `ARCHIVE_AFTER` to the archive. Returns the pairs archived."""
    nested = _decode(state[STATE_KEY]) if STATE_KEY in state else {}
    for campaign_id, sends in state.pop(_LEGACY_KEY, {}).items():
        nested.setdefault(campaign_id, {}).update(sends)
    for record in records:
        nested.setdefault(record.campaign_id, {})[record.send_id] = record.to_state()
    moved = _archive(state, nested, now - ARCHIVE_AFTER) if now is not None else set()
    state[STATE_KEY] = _encode(nested)
    return moved


def archived_totals(state: dict[str, Any]) -> dict[str, int]:
    """The archive's counts per status, and its `days_loaded` and `requests` summed."""
    return dict(state.get(TOTALS_KEY, {}))


def status_counts(statuses: Iterable[str], archived: Mapping[str, int]) -> dict[str, int]:
    """Sends per status: the given (live) ones, plus the archive's totals (`archived_totals`)."""
    counts = Counter(statuses)
    for status in lifecycle.DONE:
        counts[status] += archived.get(status, 0)
    return {status: n for status, n in counts.items() if n}


def archived_count(state: dict[str, Any]) -> int:
    totals = state.get(TOTALS_KEY, {})
    return sum(totals.get(status, 0) for status in lifecycle.DONE)


def archive_candidates(
    state: dict[str, Any], pairs: Iterable[tuple[str, str]], records: Records
) -> set[tuple[str, str]]:
    """Those of `pairs` that may be archived: not in the registry, of a campaign with archived
    sends. Whether they are is the warehouse's answer (`warehouse.finished_pairs`)."""
    campaigns = archived_campaigns(state)
    if not campaigns:
        return set()
    return {key for key in pairs if key not in records and key[0] in campaigns}


def retire_legacy_archive(
    state: dict[str, Any], finished: Callable[[set[tuple[str, str]]], set[tuple[str, str]]]
) -> set[tuple[str, str]]:
    """Drop an earlier version's archive text from state once `finished` (the `sends` table)
    has answered for its pairs. Returns the pairs it had no final row for (nothing to protect:
    listed again, they are registered again). If `finished` raises, the text stays."""
    if ARCHIVE_KEY not in state:
        return set()
    pairs = set()
    for line in _inflate(state[ARCHIVE_KEY]).decode("ascii").splitlines():
        campaign_id, send_id, _ = line.split("\t", 2)
        pairs.add((campaign_id, send_id))
    missing = pairs - finished(pairs)
    del state[ARCHIVE_KEY]
    return missing


def archived_campaigns(state: dict[str, Any]) -> set[str]:
    return set(state.get(CAMPAIGNS_KEY, ()))


def _archive(
    state: dict[str, Any], nested: dict[str, dict[str, Any]], before: datetime
) -> set[tuple[str, str]]:
    """Move finished sends whose `final_at` is before `before` out of `nested`, into the archive's
    campaigns and totals."""
    moving = [
        (campaign_id, send_id)
        for campaign_id, sends in nested.items()
        for send_id, data in sends.items()
        if data.get("status") in lifecycle.DONE
        and data.get("final_at")
        and datetime.fromisoformat(data["final_at"]) < before
    ]
    if not moving:
        return set()
    totals = Counter(state.get(TOTALS_KEY, {}))
    for campaign_id, send_id in moving:
        data = nested[campaign_id].pop(send_id)
        if not nested[campaign_id]:
            del nested[campaign_id]
        record = SendRecord.from_state(campaign_id, send_id, data)
        totals[record.status] += 1
        totals["days_loaded"] += record.days_loaded
        totals["requests"] += record.requests
    campaigns = archived_campaigns(state) | {campaign_id for campaign_id, _ in moving}
    state[CAMPAIGNS_KEY] = sorted(campaigns)
    state[TOTALS_KEY] = dict(totals)
    return set(moving)


def _encode(nested: dict[str, dict[str, Any]]) -> str:
    return _deflate(orjson.dumps(nested))


def _decode(text: str) -> dict[str, dict[str, Any]]:
    return orjson.loads(_inflate(text))


def _deflate(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _inflate(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def register(
    records: Records,
    pairs: Iterable[SendPair],
    *,
    now: datetime,
    tz: ZoneInfo,
    archived: set[tuple[str, str]] | None = None,
) -> int:
    """Add new pairs to `records` (in place); returns how many were new. Archived pairs are
    known already: they are not added again."""
    added = 0
    for pair in pairs:
        key = (pair.campaign_id, pair.send_id)
        if archived and key in archived:
            continue
        record = records.get(key)
        if record is None:
            records[key] = lifecycle.register(*key, now=now, sent_at=pair.sent_at, tz=tz)
            added += 1
        elif pair.sent_at is not None and record.status not in lifecycle.DONE:
            current = record.sent_at or record.sent_date
            if current != pair.sent_at or record.sent_date_source != "sent_at":
                records[key] = lifecycle.with_sent_at(record, pair.sent_at, tz)
    return added


def sends_row(record: SendRecord, tz: ZoneInfo) -> dict[str, Any]:
    """The record as a row of the `sends` table."""
    return {
        "campaign_id": record.campaign_id,
        "send_id": record.send_id,
        "status": record.status,
        "sent_at": record.sent_at,
        "sent_date": record.sent_date,
        "sent_date_source": record.sent_date_source,
        "window_closes_at": lifecycle.closes_at(record, tz),
        "registered_at": record.registered_at,
        "first_captured_at": record.first_captured_at,
        "last_attempt_at": record.last_attempt_at,
        "last_pulled_at": record.last_pulled_at,
        "final_at": record.final_at,
        "days_loaded": record.days_loaded,
        "loaded_from": record.loaded_from,
        "loaded_to": record.loaded_to,
        "last_error": record.last_error,
        "last_error_at": record.last_error_at,
        "failures": record.failures,
        "next_retry_at": record.next_retry_at,
        "requests": record.requests,
    }


def touched(before: Records, after: Records) -> list[SendRecord]:
    """Records that are new or changed since `before`."""
    return [r for key, r in after.items() if before.get(key) != r]

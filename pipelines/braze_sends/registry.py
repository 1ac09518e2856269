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
only grows (every send of every day, for years). Every chunk of every run reads the registry, so
such sends move to `archive`, one compressed text of `{campaign_id: {send_id: [status,
days_loaded, requests]}}`, with their totals in `archived` (counts per status, days, requests).
An archived send stays known: a sends file that lists it again does not register it again, and
`status` counts it; its row in the `sends` table stays as it was. Only registering given pairs
and finding campaigns never asked for read the archive; planning, pulling and saving a chunk
don't (measured: reading 100,000 finished records took 3.2 s and ~500 MB at every chunk).
"""

from __future__ import annotations

import base64
import zlib
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from braze_sends import lifecycle
from braze_sends.lifecycle import SendRecord
from braze_sends.sends_file import SendPair

Records = dict[tuple[str, str], SendRecord]


STATE_KEY = "registry"
ARCHIVE_KEY = "archive"
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


def archived_count(state: dict[str, Any]) -> int:
    totals = state.get(TOTALS_KEY, {})
    return sum(totals.get(status, 0) for status in lifecycle.DONE)


def archived_pairs(state: dict[str, Any]) -> set[tuple[str, str]]:
    """Every archived pair (reads the archive: not for every chunk)."""
    stored = _decode(state[ARCHIVE_KEY]) if ARCHIVE_KEY in state else {}
    return {(campaign_id, send_id) for campaign_id, sends in stored.items() for send_id in sends}


def archived_campaigns(state: dict[str, Any]) -> set[str]:
    return set(_decode(state[ARCHIVE_KEY])) if ARCHIVE_KEY in state else set()


def _archive(
    state: dict[str, Any], nested: dict[str, dict[str, Any]], before: datetime
) -> set[tuple[str, str]]:
    """Move finished sends whose `final_at` is before `before` from `nested` to the archive."""
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
    archive = _decode(state[ARCHIVE_KEY]) if ARCHIVE_KEY in state else {}
    totals = Counter(state.get(TOTALS_KEY, {}))
    for campaign_id, send_id in moving:
        data = nested[campaign_id].pop(send_id)
        if not nested[campaign_id]:
            del nested[campaign_id]
        record = SendRecord.from_state(campaign_id, send_id, data)
        archive.setdefault(campaign_id, {})[send_id] = [
            record.status,
            record.days_loaded,
            record.requests,
        ]
        totals[record.status] += 1
        totals["days_loaded"] += record.days_loaded
        totals["requests"] += record.requests
    state[ARCHIVE_KEY] = _encode(archive)
    state[TOTALS_KEY] = dict(totals)
    return set(moving)


def _encode(nested: dict[str, dict[str, Any]]) -> str:
    return base64.b64encode(zlib.compress(orjson.dumps(nested), 6)).decode("ascii")


def _decode(text: str) -> dict[str, dict[str, Any]]:
    return orjson.loads(zlib.decompress(base64.b64decode(text)))


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

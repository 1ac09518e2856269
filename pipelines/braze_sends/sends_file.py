"""The sends file: which campaign/send pairs to capture (Braze has no endpoint that lists them).

CSV with a header naming `campaign_id` and `send_id`, and optionally `sent_at` (ISO-8601 date or
datetime; a datetime without offset is read in the workspace time zone). Other columns are
ignored. A UTF-8 byte-order mark, blank lines, surrounding spaces and repeated pairs are fine.
Any invalid row rejects the whole file, with every problem listed by line: nothing is registered
from a file that is partly wrong.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from braze_sends.errors import SendsFileError
from braze_sends.settings import MAX_ID_LENGTH

REQUIRED = ("campaign_id", "send_id")
MAX_REPORTED = 20


@dataclass(frozen=True)
class SendPair:
    """One pair to capture; `sent_at` is a datetime, a date, or unknown."""

    campaign_id: str
    send_id: str
    sent_at: datetime | date | None = None


def read_sends_file(path: str | Path, *, tz: ZoneInfo) -> list[SendPair]:
    """Read and validate a sends file.

    Raises:
        SendsFileError: the file is missing, unreadable, or has invalid rows (all listed).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SendsFileError(f"sends file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise SendsFileError(
            f"sends file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    except OSError as exc:
        raise SendsFileError(f"sends file {str(path)!r} cannot be read: {exc.strerror}") from None
    return parse_sends(text, tz=tz, source=str(path))


def parse_sends(text: str, *, tz: ZoneInfo, source: str = "sends file") -> list[SendPair]:
    """Parse the CSV text of a sends file (see the module docstring)."""
    text = text.removeprefix("\ufeff")
    rows = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for header_row in rows:
        if any(cell.strip() for cell in header_row):
            header = [cell.strip().lower() for cell in header_row]
            break
    if header is None:
        raise SendsFileError(
            f"{source} is empty: expected a header `campaign_id,send_id[,sent_at]`"
        )
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise SendsFileError(
            f"{source}: the header {','.join(header)!r} lacks {', '.join(missing)}; "
            "expected `campaign_id,send_id` and optionally `sent_at`"
        )
    at = {name: header.index(name) for name in (*REQUIRED, "sent_at") if name in header}

    pairs: dict[tuple[str, str], SendPair] = {}
    problems: list[str] = []
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in at.items()}
        row_problems = [p for name in REQUIRED if (p := check_id(name, cells[name]))]
        sent_at = None
        if cells.get("sent_at"):
            try:
                sent_at = parse_sent_at(cells["sent_at"], tz)
            except ValueError as exc:
                row_problems.append(str(exc))
        if row_problems:
            problems.extend(f"line {line}: {p}" for p in row_problems)
            continue
        pair = SendPair(cells["campaign_id"], cells["send_id"], sent_at)
        previous = pairs.get((pair.campaign_id, pair.send_id))
        if previous is None or (previous.sent_at is None and sent_at is not None):
            pairs[(pair.campaign_id, pair.send_id)] = pair
        elif sent_at is not None and previous.sent_at != sent_at:
            problems.append(
                f"line {line}: {pair.campaign_id}/{pair.send_id} repeats with another sent_at "
                f"({cells['sent_at']} vs {previous.sent_at.isoformat()})"
            )
    if problems:
        shown = problems[:MAX_REPORTED]
        more = (
            f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        )
        raise SendsFileError(
            f"{source} has {len(problems)} invalid row(s); nothing was registered from it:\n  "
            + "\n  ".join(shown)
            + more
        )
    return list(pairs.values())


def check_id(name: str, value: str) -> str | None:
    """Why `value` cannot be a Braze `campaign_id`/`send_id`, or None when it can."""
    if not value:
        return f"{name} is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{name} {value[:20]!r}... is {len(value)} characters; Braze ids have at most 64"
    if not value.isascii():
        return f"{name} {value!r} is not ASCII; Braze ids are ASCII"
    if not value.isprintable():
        return f"{name} {value!r} contains control characters"
    return None


def parse_sent_at(value: str, tz: ZoneInfo) -> datetime | date:
    """An ISO-8601 date, or datetime (read in `tz` when it has no offset)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"sent_at {value!r} is not an ISO-8601 date or datetime "
            "(e.g. 2026-11-20 or 2026-11-20T14:30:00+00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def pairs_from_config(values: Iterable[str | dict], *, tz: ZoneInfo) -> list[SendPair]:
    """Pairs given in config: `"campaign_id/send_id"` strings or tables with the CSV's fields."""
    lines = ["campaign_id,send_id,sent_at"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for value in values:
        if isinstance(value, dict):
            writer.writerow(
                [
                    value.get("campaign_id", ""),
                    value.get("send_id", ""),
                    value.get("sent_at", "") or "",
                ]
            )
        else:
            campaign_id, _, send_id = str(value).partition("/")
            writer.writerow([campaign_id, send_id, ""])
    return parse_sends("\n".join(lines) + "\n" + buffer.getvalue(), tz=tz, source="config pairs")

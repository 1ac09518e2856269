"""Thread-safe request counters of the sandbox server: per status, per pair, per endpoint."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass

Status = int | str  # an HTTP status, or "drop" for a connection closed without a full answer


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox saw it (never its headers)."""

    time: float  # real UTC epoch seconds
    path: str
    params: dict[str, str]
    status: Status


class SandboxStats:
    """Requests in total, per status, per ``(campaign_id, send_id)`` of ``/sends/data_series``,
    per endpoint (path) and per ``(path, campaign_id)``, and a bounded log."""

    def __init__(self, log_size: int = 10_000):
        self._lock = threading.Lock()
        self._by_status: Counter[Status] = Counter()
        self._by_pair: Counter[tuple[str, str]] = Counter()
        self._by_path: Counter[str] = Counter()
        self._by_path_status: Counter[tuple[str, Status]] = Counter()
        self._by_path_campaign: Counter[tuple[str, str]] = Counter()
        self._log: deque[LoggedRequest] = deque(maxlen=log_size)

    def record(
        self,
        moment: float,
        path: str,
        params: dict[str, str],
        status: Status,
        pair: tuple[str, str] | None,
    ) -> None:
        with self._lock:
            self._by_status[status] += 1
            if pair is not None:
                self._by_pair[pair] += 1
            self._by_path[path] += 1
            self._by_path_status[(path, status)] += 1
            campaign_id = params.get("campaign_id")
            if campaign_id:
                self._by_path_campaign[(path, campaign_id)] += 1
            self._log.append(LoggedRequest(moment, path, params, status))

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._by_status.values())

    @property
    def by_status(self) -> dict[Status, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def by_pair(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._by_pair)

    @property
    def by_path(self) -> dict[str, int]:
        """Requests per endpoint path (``/sends/data_series``, ``/campaigns/details``, ...)."""
        with self._lock:
            return dict(self._by_path)

    def by_campaign(self, path: str) -> dict[str, int]:
        """Requests to ``path`` per ``campaign_id`` parameter."""
        with self._lock:
            return {c: n for (p, c), n in self._by_path_campaign.items() if p == path}

    @property
    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, status: Status, path: str | None = None) -> int:
        """Requests answered with ``status`` (only those to ``path`` when given)."""
        with self._lock:
            if path is None:
                return self._by_status[status]
            return self._by_path_status[(path, status)]

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_pair.clear()
            self._by_path.clear()
            self._by_path_status.clear()
            self._by_path_campaign.clear()
            self._log.clear()

    def snapshot(self, recent: int = 100) -> dict:
        """A JSON-ready summary (the ``recent`` last requests included)."""
        with self._lock:
            return {
                "total": sum(self._by_status.values()),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items(), key=str)},
                "by_path": dict(sorted(self._by_path.items())),
                "by_pair": [
                    {"campaign_id": c, "send_id": s, "requests": n}
                    for (c, s), n in sorted(self._by_pair.items())
                ],
                "recent": [
                    {"time": r.time, "path": r.path, "params": r.params, "status": r.status}
                    for r in list(self._log)[-recent:]
                ]
                if recent
                else [],
            }

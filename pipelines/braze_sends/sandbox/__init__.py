"""A local Braze API sandbox: an HTTP server that answers ``GET /sends/data_series`` like Braze.

Braze cannot be reached from the demo, the tests or the benchmark, so this package plays it:

- ``catalog``: deterministic campaigns and sends and each send's daily analytics at any
  ``as_of`` (restatement, settling, zero-filled days, 14-day retention); ``campaigns``,
  ``plan``, ``channels`` and ``restatement`` hold the data model behind it.
- ``endpoint``: the endpoint's auth, parameter validation and answers, as a pure function.
- ``faults``: deterministic fault decisions (5xx, spurious 429, dropped connections, malformed
  bodies, slow answers) and scripted faults.
- ``ratelimit``: Braze's fixed-window budget and its ``x-ratelimit-*`` headers.
- ``clock``: the controllable clock the data follows.
- ``server``: the thin HTTP layer, its counters (``stats``) and ``/_sandbox/`` admin endpoints.
- ``process``: the sandbox in a process of its own (the benchmark, the scale test).

Example::

    catalog = Catalog.demo(date.today())
    with SandboxServer(catalog, rate_limit=RateLimit(5, 1)) as server:
        requests.get(f"{server.url}/sends/data_series", params={...},
                     headers={"Authorization": f"Bearer {DEMO_API_KEY}"})
"""

from braze_sends.sandbox.catalog import (
    RETENTION_DAYS,
    RETENTION_MODES,
    Campaign,
    Catalog,
    CatalogError,
    Send,
    SendExpiredError,
    UnknownCampaignError,
    UnknownSendError,
)
from braze_sends.sandbox.channels import CHANNELS
from braze_sends.sandbox.clock import SandboxClock
from braze_sends.sandbox.endpoint import ALL_PERMISSIONS, DATA_SERIES_PERMISSION, DEMO_API_KEY
from braze_sends.sandbox.faults import Fault, Faults
from braze_sends.sandbox.plan import ACTIVITY_DAYS, CONTROL_GROUP
from braze_sends.sandbox.ratelimit import RateLimit
from braze_sends.sandbox.restatement import DEFAULT_SETTLE_DAYS
from braze_sends.sandbox.server import DATA_SERIES_PATH, SandboxServer
from braze_sends.sandbox.stats import SandboxStats

__all__ = [
    "ACTIVITY_DAYS",
    "ALL_PERMISSIONS",
    "CHANNELS",
    "CONTROL_GROUP",
    "DATA_SERIES_PATH",
    "DATA_SERIES_PERMISSION",
    "DEFAULT_SETTLE_DAYS",
    "DEMO_API_KEY",
    "RETENTION_DAYS",
    "RETENTION_MODES",
    "Campaign",
    "Catalog",
    "CatalogError",
    "Fault",
    "Faults",
    "RateLimit",
    "SandboxClock",
    "SandboxServer",
    "SandboxStats",
    "Send",
    "SendExpiredError",
    "UnknownCampaignError",
    "UnknownSendError",
]

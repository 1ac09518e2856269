"""`make dashboard`: a page in the browser over the loaded data (DuckDB, read-only).

- `data`: the queries, over the reporting views, one read-only connection per page view;
- `charts`: the plotly figures (daily series by channel, rates by variation, open windows);
- `page`: the HTML;
- `server`: the local HTTP server and its command line (`python -m braze_sends.dashboard`).
"""

from braze_sends.dashboard.server import Dashboard, main

__all__ = ["Dashboard", "main"]

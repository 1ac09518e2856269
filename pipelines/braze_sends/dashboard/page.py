"""The dashboard's HTML (pure: what to show in, a page out). Every value is escaped.

The charts are drawn in the browser by plotly.js, served by the dashboard itself (no CDN: it works
offline). Once drawn, the page writes what it drew into `#chart-report` (traces and points per
chart) and sets `data-charts-rendered` on `<body>`, which the headless-browser test reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

import plotly.graph_objects as go

from braze_sends.dashboard.data import DAILY_METRICS, Campaign, Selection

PLOTLY_JS_PATH = "/static/plotly.min.js"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px;
       color: #222; }
header { padding: 12px 0; border-bottom: 1px solid #ddd; }
h1 { font-size: 1.4em; margin: 0 0 4px; }
.meta { color: #666; font-size: 0.9em; }
form { display: flex; gap: 16px; flex-wrap: wrap; padding: 12px 0; align-items: end; }
label { display: flex; flex-direction: column; font-size: 0.85em; color: #555; gap: 4px; }
select { font-size: 1em; padding: 4px; max-width: 420px; }
.chart { min-height: 320px; border-bottom: 1px solid #eee; }
.labels { font-size: 0.9em; color: #444; }
.empty { color: #666; padding: 24px 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 12px 0 32px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; }
td.risk { color: #d62728; font-weight: 600; }
"""


@dataclass
class PageData:
    """Everything one page shows."""

    db: str
    now: datetime
    loaded_at: datetime | None
    status_counts: dict[str, int]
    campaigns: list[Campaign]
    sends: list[dict[str, Any]]
    selection: Selection
    labels: dict[str, str]
    charts: dict[str, go.Figure] = field(default_factory=dict)  # element id -> figure
    live: list[dict[str, Any]] = field(default_factory=list)


def render(page: PageData) -> str:
    """The whole dashboard page."""
    selection = page.selection
    campaign = next((c for c in page.campaigns if c.campaign_id == selection.campaign_id), None)
    subject = f"send {selection.send_id}" if selection.send_id else "all sends of the campaign"
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(page.status_counts.items())) or "none"
    loaded = page.loaded_at.isoformat(timespec="seconds") if page.loaded_at else "never"
    meta = f"{page.db} · last load {loaded} · sends by status: {counts}"
    body = [
        "<header>",
        "<h1>Braze sends</h1>",
        f'<div class="meta">{escape(meta)}</div>',
        "</header>",
        _form(page),
    ]
    if campaign is not None:
        body.append(f"<h2>{escape(campaign.name or campaign.campaign_id)} · {escape(subject)}</h2>")
    if page.labels:
        items = "".join(
            f"<li><code>{escape(metric)}</code>: {escape(label)}</li>"
            for metric, label in sorted(page.labels.items())
        )
        body.append(f'<ul class="labels">{items}</ul>')
    for element_id in page.charts:
        body.append(f'<section class="chart" id="{escape(element_id)}"></section>')
    if not page.live:
        body.append('<p class="empty">No send window is open: nothing left to capture.</p>')
    else:
        body.append(_live_table(page.live, page.now))
    body.append('<pre id="chart-report" hidden></pre>')
    body.append(f'<script src="{PLOTLY_JS_PATH}"></script>')
    body.append(f"<script>{_draw_script(page.charts)}</script>")
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>braze-sends dashboard</title><style>{_STYLE}</style></head>"
        "<body>" + "\n".join(body) + "</body></html>"
    )


def message(title: str, detail: str, *, reload_seconds: int | None = None) -> str:
    """A page that only says something (no data yet, the file is busy)."""
    refresh = f"<meta http-equiv=refresh content={reload_seconds}>" if reload_seconds else ""
    return (
        f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>{refresh}"
        f"<title>braze-sends dashboard</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1></header><p>{escape(detail)}</p></body></html>"
    )


def _form(page: PageData) -> str:
    selection = page.selection
    campaigns = "".join(
        _option(c.campaign_id, c.label, c.campaign_id == selection.campaign_id)
        for c in page.campaigns
    )
    sends = _option("", "All sends of the campaign", selection.send_id is None) + "".join(
        _option(
            s["send_id"],
            f"{s['send_id']} · {s['sent_date'] or '?'} · {s['status']}",
            s["send_id"] == selection.send_id,
        )
        for s in page.sends
    )
    metrics = "".join(
        _option(m, m + (f" ({page.labels[m]})" if m in page.labels else ""), m == selection.metric)
        for m in DAILY_METRICS
    )
    return (
        '<form method="get" action="/">'
        '<label>Campaign<select name="campaign" '
        "onchange=\"this.form.send.value='';this.form.submit()\">"
        f"{campaigns}</select></label>"
        f'<label>Send<select name="send" onchange="this.form.submit()">{sends}</select></label>'
        '<label>Daily metric<select name="metric" onchange="this.form.submit()">'
        f"{metrics}</select></label>"
        "<noscript><button>Show</button></noscript>"
        "</form>"
    )


def _option(value: str, text: str, selected: bool) -> str:
    chosen = " selected" if selected else ""
    return f'<option value="{escape(value)}"{chosen}>{escape(text)}</option>'


def _live_table(rows: list[dict[str, Any]], now: datetime) -> str:
    head = (
        "<tr><th>campaign</th><th>send_id</th><th>status</th><th>window closes</th>"
        "<th>last pulled</th><th>last error</th></tr>"
    )
    lines = []
    for row in rows:
        status = "at risk" if row["at_risk"] else row["status"]
        closes = row["window_closes_at"]
        lines.append(
            "<tr>"
            f"<td>{escape(row['campaign_name'] or row['campaign_id'])}</td>"
            f"<td>{escape(row['send_id'])}</td>"
            f'<td class="{"risk" if row["at_risk"] else ""}">{escape(status)}</td>'
            f"<td>{escape(str(closes) if closes else '?')}</td>"
            f"<td>{escape(str(row['last_pulled_at'] or 'never'))}</td>"
            f"<td>{escape(row['last_error'] or '')}</td>"
            "</tr>"
        )
    return (
        f"<h2>Open send windows ({len(rows)} closing first, as of "
        f"{escape(now.isoformat(timespec='minutes'))})</h2>"
        f"<table>{head}{''.join(lines)}</table>"
    )


def _draw_script(charts: dict[str, go.Figure]) -> str:
    figures = {element_id: json.loads(figure.to_json()) for element_id, figure in charts.items()}
    payload = json.dumps(figures).replace("</", "<\\/")
    return f"""
const figures = {payload};
const report = {{}};
function drawn(trace) {{
  const xs = trace.x || [], ys = trace.y || [];
  let n = 0;
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {{
    if (xs[i] !== null && xs[i] !== undefined && ys[i] !== null && ys[i] !== undefined) n++;
  }}
  return n;
}}
Promise.all(Object.entries(figures).map(([id, figure]) =>
  Plotly.newPlot(id, figure.data, figure.layout, {{displaylogo: false, responsive: true}})
    .then(gd => {{
      report[id] = {{traces: gd.data.length,
                     points: gd.data.reduce((n, t) => n + drawn(t), 0),
                     svg: gd.querySelectorAll('svg.main-svg').length}};
    }})))
  .then(() => {{
    document.getElementById('chart-report').textContent = JSON.stringify(report);
    document.body.setAttribute('data-charts-rendered', Object.keys(report).length);
  }})
  .catch(error => {{
    document.getElementById('chart-report').textContent = 'error: ' + error;
  }});
"""

"""`make bench`: throughput against the rate budget, flatten + load speed, memory, and baselines.

Everything is measured in this one run on this machine, side by side, and printed as a table
that is also written to `benchmarks/results.md`:

1. The workload: N pairs x a 14-day window against the sandbox (in its own process) with
   100-300 ms latency and a budget of 50 requests/s. Achieved rate / budget, 429s, and wall time /
   floor (requests / budget), for our pipeline (the real CLI).
2. Flatten + load on its own: pre-fetched responses through the columnar path into DuckDB (merge),
   rows/s, median of 3; the reference dict-row path beside it.
3. Peak RSS of the CLI at 1,000 pairs (median of 3 runs) and at N pairs, both into a new
   warehouse; and of a run adding 1,000 new pairs to the N-pair warehouse (a scheduled run).
4. A chunk's read and write of the registry with 100,000 finished sends in its history: kept
   live, as before the archive, beside archived (`registry.py`); a dlt load's time and peak RSS
   with those sends archived, beside no history and beside the previous version's archive (the
   pairs as text in pipeline state); and a run given all of them again (`warehouse.py`).
5. Baselines on a scaled-down workload: a plain sequential loop (requests + dlt dict rows) and
   dlt's own `rest_api` source for the same endpoint; pairs/s and their ratio to ours.

Options (environment): BENCH_PAIRS (default 10000), BENCH_BASELINE_PAIRS (150), BENCH_RATE (50).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from braze_sends.sandbox.process import sandbox_process

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results.md"
PAIRS = int(os.environ.get("BENCH_PAIRS", "10000"))
BASELINE_PAIRS = int(os.environ.get("BENCH_BASELINE_PAIRS", "150"))
RATE = float(os.environ.get("BENCH_RATE", "50"))
WINDOW_SECONDS = 10
LATENCY_MS = "100-300"
WORKERS = 32
KEY = "sandbox-demo-key"


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="braze-bench-"))
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "SOURCES__BRAZE__API_KEY": KEY}
    rows: list[tuple[str, str, str]] = []
    try:
        print(
            f"workload: {PAIRS:,} pairs x 14 days, latency {LATENCY_MS} ms, budget {RATE:g} req/s"
        )
        with sandbox(work / "sandbox", PAIRS + 1000, rate_limit=True) as (url, all_sends):
            env["SOURCES__BRAZE__BASE_URL"] = url
            sends = subset(all_sends, work / "sends.csv", PAIRS)
            ours = run_cli(work / "ours", sends, env)
            small = subset(sends, work / "sends_1000.csv", 1000)
            # Peak RSS varies by tens of MB from run to run: the small run is cheap, take 3.
            small_runs = [run_cli(work / f"ours_1000_{i}", small, env) for i in range(3)]
            small_rss = statistics.median(r["rss_mb"] for r in small_runs)
            # What a scheduled run meets: 1,000 new pairs merged into the big run's warehouse (a
            # budget of 1,000 requests: every stored pair is open, and due for a refresh too).
            shutil.copytree(work / "ours", work / "ours_steady")
            more = subset(all_sends, work / "sends_more.csv", 1000, skip=PAIRS)
            steady = run_cli(work / "ours_steady", more, env, ["--max-requests", "1000"])
        rows += throughput_rows(ours)
        print("flatten + load on its own...", flush=True)
        speed = flatten_and_load(work / "flatten")
        fast, reference = speed["columnar"], speed["reference"]
        rows += [
            (
                "flatten + load into DuckDB, columnar (median of 3)",
                f"{fast:,.0f} rows/s",
                "goal >= 300,000 rows/s",
            ),
            ("  of which: columnar flatten alone", f"{speed['flatten_only']:,.0f} rows/s", ""),
            (
                "  of which: dlt extract + merge load alone",
                f"{speed['load_only']:,.0f} rows/s",
                "the ceiling of the combined figure",
            ),
            (
                "  DuckDB alone: one copy of the same tables",
                f"{speed['one_copy']:,.0f} rows/s",
                "no dlt; a merge copies twice (staging, table)",
            ),
            (
                "flatten + load into DuckDB, reference dict rows",
                f"{reference:,.0f} rows/s",
                f"columnar is {fast / reference:.1f}x",
            ),
            (
                "parsing a response body (orjson, as the client does)",
                f"{speed['parse_orjson']:.0f} ms per 1,000",
                (
                    f"standard json {speed['parse_json']:.0f} ms: "
                    f"{speed['parse_json'] / speed['parse_orjson']:.1f}x"
                ),
            ),
            (
                "peak RSS, 1,000 pairs (median of 3)",
                f"{small_rss:.0f} MB",
                "goal < 500 MB; runs: " + ", ".join(f"{r['rss_mb']:.0f}" for r in small_runs),
            ),
            (
                f"peak RSS, {ours['pairs']:,} pairs",
                f"{ours['rss_mb']:.0f} MB",
                f"{ours['rss_mb'] / small_rss:.2f}x the 1,000-pair median (goal: flat)",
            ),
            (
                f"peak RSS, a 1,000-request run adding pairs to the {ours['pairs']:,}",
                f"{steady['rss_mb']:.0f} MB",
                f"the {ours['pairs']:,}-pair run is {ours['rss_mb'] / steady['rss_mb']:.2f}x this",
            ),
        ]
        history = timed_script(REGISTRY_HISTORY)
        all_live = f"{history['all_s'] * 1000:,.0f} ms, {history['all_mb']:,.0f} MB"
        rows.append(
            (
                f"registry per chunk, {HISTORY_DONE // 1000}k sends finished a month ago",
                f"{history['archived_s'] * 1000:.0f} ms, {history['archived_mb']:.0f} MB",
                f"not archived: {all_live} (read + write; heap peak)",
            )
        )
        print("a load with a history of archived sends...", flush=True)
        past = archive_history(work / "history")
        rows += [
            (
                f"a load, {HISTORY_DONE // 1000}k archived sends in history (median of 3)",
                f"{past['archived_s']:.2f} s, {past['archived_mb']:.0f} MB peak RSS",
                (
                    f"state {past['archived_state_kb']:,.0f} KB; no history: "
                    f"{past['none_s']:.2f} s, {past['none_mb']:.0f} MB"
                ),
            ),
            (
                "  the same, pairs also kept in state (previous version)",
                f"{past['text_s']:.2f} s, {past['text_mb']:.0f} MB peak RSS",
                f"state {past['text_state_kb']:,.0f} KB, held ~17x by dlt at each step",
            ),
            (
                "  a run given all of them again: asked of `sends`",
                f"{past['given_s'] * 1000:,.0f} ms, +{past['given_mb']:.0f} MB",
                "2,000 send ids a query; none registered again",
            ),
        ]
        print(f"baselines on {BASELINE_PAIRS} pairs (same sandbox, latency, budget)...", flush=True)
        with sandbox(work / "sandbox_small", BASELINE_PAIRS, rate_limit=True) as (url, sends):
            env["SOURCES__BRAZE__BASE_URL"] = url
            loop = sequential_loop(url, sends, work / "loop")
            rest = rest_api_baseline(url, sends, work / "rest_api")
        ours_rate = ours["pairs"] / ours["seconds"]
        for name, result in (
            ("plain sequential loop (requests + dlt dict rows)", loop),
            ("dlt rest_api source", rest),
        ):
            rate = result["pairs"] / result["seconds"]
            rows.append(
                (
                    f"baseline: {name}",
                    f"{rate:.2f} pairs/s ({result['pairs']} pairs in {result['seconds']:.0f} s)",
                    f"ours is {ours_rate / rate:.1f}x faster",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(rows)
    print("\n" + report)
    RESULTS.write_text(report + "\n")
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 0


# -- the sandbox in its own process ----------------------------------------------------------


def sandbox(folder: Path, pairs: int, *, rate_limit: bool):
    """The sandbox in its own process with the bench's latency (and budget, if `rate_limit`)."""
    args = ["--latency-ms", LATENCY_MS]
    if rate_limit:
        args += ["--rate-limit", str(int(RATE * WINDOW_SECONDS))]
        args += ["--rate-window", str(WINDOW_SECONDS)]
    return sandbox_process(folder, sends=pairs, campaigns=max(pairs // 20, 5), args=args)


def reset_stats(url: str) -> None:
    requests.post(f"{url}/_sandbox/stats/reset", timeout=5)


def sandbox_stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/stats", params={"recent": 0}, timeout=10).json()


def subset(sends: Path, target: Path, count: int, *, skip: int = 0) -> Path:
    """The header and `count` pairs of a sends file, after the first `skip`."""
    header, *lines = sends.read_text().splitlines()
    target.write_text("\n".join([header, *lines[skip : skip + count]]) + "\n")
    return target


# -- ours: the real CLI ----------------------------------------------------------------------


def run_cli(
    home: Path, sends: Path, env: dict[str, str], extra: list[str] | None = None
) -> dict[str, Any]:
    """`braze-sends run` as a user runs it: wall time, its own peak RSS, the sandbox's count."""
    home.mkdir(parents=True, exist_ok=True)  # an existing home: its warehouse and state go on
    pairs = len(sends.read_text().splitlines()) - 1
    print(f"ours: {pairs:,} pairs...", flush=True)
    url = env["SOURCES__BRAZE__BASE_URL"]
    reset_stats(url)
    args = [
        "run",
        "--sends",
        str(sends),
        "--workers",
        str(WORKERS),
        "--requests-per-hour",
        str(int(RATE * 3600)),
        "--log-format",
        "json",
        *(extra or []),
    ]
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    # Output goes to files: a pipe nobody reads while the run goes on would block the run once
    # its logs fill the pipe's buffer (64 KB: a few dozen tracebacks).
    with open(home / "stdout.log", "w+") as out_file, open(home / "stderr.log", "w+") as err_file:
        process = subprocess.Popen(
            [sys.executable, "-c", PEAK_RSS_LAUNCHER, *args],
            cwd=home,
            env={**env, "DLT_DATA_DIR": str(home / "dlt")},
            stdout=out_file,
            stderr=err_file,
        )
        while process.poll() is None:  # the sandbox's request count, once a second
            samples.append((time.monotonic(), sandbox_stats(url)["total"]))
            time.sleep(1.0)
        seconds = time.monotonic() - started
        out, err = _read(out_file), _read(err_file)
    if process.returncode != 0:
        raise RuntimeError(f"run failed ({process.returncode}): {err[-2000:]}")
    peak_kb = int(err.strip().splitlines()[-1].split()[-1])
    stats = sandbox_stats(url)
    return {
        "pairs": pairs,
        "seconds": seconds,
        "rss_mb": peak_kb / 1024,
        "stats": stats,
        "samples": samples,
        "out": out,
    }


def _read(handle: Any) -> str:
    handle.seek(0)
    return handle.read()


# Runs the CLI in this interpreter and reports its own peak RSS (kB) as the last stderr line.
PEAK_RSS_LAUNCHER = """
import atexit, resource, runpy, sys
atexit.register(lambda: print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                              file=sys.stderr, flush=True))
sys.argv = ["braze-sends", *sys.argv[1:]]
runpy.run_module("braze_sends.cli", run_name="__main__")
"""


def achieved_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Requests per second from the first to the last request the sandbox counted."""
    moving = [(t, n) for t, n in samples if 0 < n]
    done = [t for t, n in moving if n >= total]
    if len(moving) < 2 or not done:
        return float("nan")
    (t0, n0), t1 = moving[0], done[0]
    return (total - n0) / (t1 - t0) if t1 > t0 else float("nan")


def throughput_rows(ours: dict[str, Any]) -> list[tuple[str, str, str]]:
    stats = ours["stats"]
    requests_served = stats["total"]
    by_status = stats.get("by_status", {})
    throttled = int(by_status.get("429", 0))
    achieved = achieved_rate(ours["samples"], requests_served)
    floor = requests_served / RATE
    return [
        ("requests served (data series + campaign details)", f"{requests_served:,}", ""),
        (
            "achieved requests/s / budget",
            f"{achieved:.1f} / {RATE:g} = {achieved / RATE:.3f}",
            "goal >= 0.95",
        ),
        ("429s received", f"{throttled}", "goal 0"),
        (
            "end-to-end wall time / floor (requests / budget)",
            f"{ours['seconds']:.1f} s / {floor:.1f} s = {ours['seconds'] / floor:.3f}",
            "goal <= 1.10",
        ),
    ]


# -- flatten + load on its own ---------------------------------------------------------------


def flatten_and_load(folder: Path) -> dict[str, float]:
    return timed_script(FLATTEN_AND_LOAD.format(folder=str(folder)))


FLATTEN_AND_LOAD = r"""
import json, shutil, statistics, time
from datetime import datetime, timedelta, timezone
import dlt
from braze_sends.sandbox import Catalog
from braze_sends.columnar import PAIR, Response, flatten_batch
from braze_sends.columns import DAILY_KEY, VARIATION_KEY
from braze_sends.flatten import flatten_series
from braze_sends.runner import make_pipeline
from braze_sends.tables import TableBuffer
NOW = datetime(2026, 11, 20, 15, tzinfo=timezone.utc)
cat = Catalog.generate(1, start=NOW.date() - timedelta(days=13), days=13, sends=6000, campaigns=300)
resp = [Response(c, s, cat.series(c, s, length=14, ending_at_date=NOW.date(), as_of=NOW), NOW)
        for c, s, _ in cat.pairs()]

def columnar():
    v = TableBuffer("send_variation_daily", VARIATION_KEY, max_rows=10**9)
    d = TableBuffer("send_daily", DAILY_KEY, max_rows=10**9)
    for i in range(0, len(resp), 250):
        b = flatten_batch(resp[i:i + 250]); b.activity()
        v.add_table(b.variation.drop_columns([PAIR]), b.kinds)
        d.add_table(b.daily.drop_columns([PAIR]), b.kinds)
    yield from v.flush(); yield from d.flush()

def reference():
    v = TableBuffer("send_variation_daily", VARIATION_KEY, item_format="rows", max_rows=10**9)
    d = TableBuffer("send_daily", DAILY_KEY, item_format="rows", max_rows=10**9)
    for r in resp:
        f = flatten_series(r.campaign_id, r.send_id, r.data, pulled_at=r.pulled_at)
        v.add(f.variation_rows, f.kinds); d.add(f.daily_rows, f.kinds)
    yield from v.flush(); yield from d.flush()

def measure(gen, repeat):
    times = []
    for i in range(repeat):
        folder = "{folder}/" + gen.__name__ + str(i)
        shutil.rmtree(folder, ignore_errors=True)
        p = make_pipeline(pipeline_name="bench", pipelines_dir=folder,
                          destination=dlt.destinations.duckdb(folder + ".duckdb"))
        started = time.perf_counter()
        info = p.run(dlt.resource(gen, name="x")())
        times.append(time.perf_counter() - started)
        rows = sum(p.last_trace.last_normalize_info.row_counts.get(t, 0)
                   for t in ("send_variation_daily", "send_daily"))
    return rows / statistics.median(times)

def flatten_only():
    started = time.perf_counter()
    rows = 0
    for i in range(0, len(resp), 250):
        b = flatten_batch(resp[i:i + 250]); b.activity()
        rows += b.variation.num_rows + b.daily.num_rows
    return rows / (time.perf_counter() - started)

ready = list(columnar())  # flattened beforehand: dlt's extract + normalize + merge load alone
def load_only():
    yield from ready
load_only.__name__ = "load_only"

def one_copy():
    # DuckDB alone, same settings, no dlt: the same Arrow tables copied once into new tables.
    # A merge copies at least once (dlt's delete-insert: into staging, then into the table).
    import duckdb, os
    from braze_sends.settings import DUCKDB_DEFAULTS
    os.makedirs("{folder}", exist_ok=True)
    times = []
    for i in range(3):
        con = duckdb.connect("{folder}/one_copy" + str(i) + ".duckdb", config=DUCKDB_DEFAULTS)
        started = time.perf_counter()
        for n, item in enumerate(ready):
            arrow_table = item.data
            con.execute("CREATE TABLE t" + str(n) + " AS SELECT * FROM arrow_table")
        times.append(time.perf_counter() - started)
        con.close()
    return sum(item.data.num_rows for item in ready) / statistics.median(times)

def parse(loads, bodies):
    started = time.perf_counter()
    for body in bodies:
        loads(body)
    return (time.perf_counter() - started) / len(bodies) * 1000 * 1000  # ms per 1,000

import orjson
bodies = [json.dumps({{"message": "success", "data": r.data}}).encode() for r in resp]
print(json.dumps({{"columnar": measure(columnar, 3), "reference": measure(reference, 1),
                  "flatten_only": statistics.median(flatten_only() for _ in range(3)),
                  "load_only": measure(load_only, 3), "one_copy": one_copy(),
                  "parse_orjson": statistics.median(parse(orjson.loads, bodies) for _ in range(3)),
                  "parse_json": statistics.median(parse(json.loads, bodies) for _ in range(3))}}))
"""


# -- the registry with history ---------------------------------------------------------------

HISTORY_LIVE, HISTORY_DONE = 1_000, 100_000

# What every chunk does with the registry (read it, write the changed records back), with a year
# or so of finished sends in it: kept live (as before the archive) beside archived.
REGISTRY_HISTORY = f"""
import json, statistics, time, tracemalloc
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from braze_sends import lifecycle, registry
now, utc = datetime(2026, 11, 20, 15, tzinfo=timezone.utc), ZoneInfo("UTC")
live = [lifecycle.register("c%d" % (i // 20), "live%d" % i, now=now, sent_at=now, tz=utc)
        for i in range({HISTORY_LIVE})]
done = [replace(lifecycle.register("c%d" % (i // 20), "s%d" % i, now=now, sent_at=now, tz=utc),
                status="final", final_at=now - timedelta(days=40), requests=4,
                loaded_from=date(2026, 9, 1), loaded_to=date(2026, 9, 14),
                first_captured_at=now - timedelta(days=80), last_pulled_at=now - timedelta(days=40),
                captured_days=tuple(date(2026, 9, 1) + timedelta(days=d) for d in range(14)))
        for i in range({HISTORY_DONE})]
states = {{"all": {{}}, "archived": {{}}}}
registry.save_records(states["all"], [*done, *live])
registry.save_records(states["archived"], [*done, *live], now=now)
del done

def chunk(state, archive):
    records = registry.load_records(state)
    registry.save_records(state, list(records.values())[:{HISTORY_LIVE}],
                          now=now if archive else None)

out = {{}}
for name, state in states.items():
    times = []
    for _ in range(3):
        started = time.perf_counter()
        chunk(state, name == "archived")
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    chunk(state, name == "archived")
    out[name + "_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out[name + "_s"] = statistics.median(times)
print(json.dumps(out))
"""


# A history of finished sends, archived, in a DuckDB warehouse: its `sends` rows and the state
# that archived them; layout "text" also keeps the pairs in state as the previous version did.
ARCHIVE_HISTORY = """
import json, random, resource, sys, time, uuid
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
import dlt
from braze_sends import lifecycle, registry, warehouse
from braze_sends.runner import make_pipeline
from braze_sends.settings import PIPELINE_NAME
from braze_sends.tables import sends_rows
folder, step, layout, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
now, utc = datetime(2026, 11, 20, 15, tzinfo=timezone.utc), ZoneInfo("UTC")
rng = random.Random(7)
campaigns = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count // 20)]
keys = [(campaigns[i % len(campaigns)], "%024x" % rng.getrandbits(96)) for i in range(count)]
sent = now - timedelta(days=80)

def pipeline():
    return make_pipeline(pipeline_name="history", pipelines_dir=folder,
                         destination=dlt.destinations.duckdb(folder + "/warehouse.duckdb"))

def source(body):
    @dlt.source(name=PIPELINE_NAME)
    def history():
        return dlt.resource(body, name="history")
    return history()

if step == "setup":
    done = [replace(lifecycle.register(c, s, now=sent, sent_at=sent, tz=utc), status="final",
                    final_at=now - timedelta(days=40), requests=15, loaded_from=sent.date(),
                    loaded_to=sent.date() + timedelta(days=13),
                    captured_days=tuple(sent.date() + timedelta(days=d) for d in range(14)))
            for c, s in keys]
    def body():
        state = dlt.current.source_state()
        registry.save_records(state, done, now=now)  # archived: their campaigns and totals
        if layout == "text":  # the previous version also kept the pairs in state, as text
            lines = "".join(f"{r.campaign_id}\\t{r.send_id}\\tfinal\\t14\\t15\\n" for r in done)
            state[registry.ARCHIVE_KEY] = registry._deflate(lines.encode())
        yield from sends_rows([registry.sends_row(r, utc) for r in done], "arrow")
    pipeline().run(source(body))
    print(json.dumps({"state_kb": len(json.dumps(pipeline().state, default=str)) / 1024}))
elif step == "load":  # any later load: a chunk of a scheduled run
    def body():
        dlt.current.source_state()["tick"] = time.time()
        yield {"n": 1}
    p = pipeline()
    started = time.perf_counter()
    p.run(source(body))
    seconds = time.perf_counter() - started
    print(json.dumps({"s": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
else:  # a run given all of them again: which are archived, asked of the `sends` table
    p = pipeline()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    assert warehouse.finished_pairs(p, keys) == set(keys)
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"s": seconds, "mb": grown}))
"""


def archive_history(folder: Path) -> dict[str, Any]:
    """A load's time and peak RSS with no history, with 100,000 archived sends (median of 3
    each), and with the same sends also kept as text in state (the previous version); the
    lookup of a run given all of them again."""
    out: dict[str, Any] = {}
    for layout in ("none", "archived", "text"):
        home = folder / layout
        count = 20 if layout == "none" else HISTORY_DONE
        args = [str(home), "setup", layout, str(count)]
        out[f"{layout}_state_kb"] = timed_script(ARCHIVE_HISTORY, args)["state_kb"]
        loads = [timed_script(ARCHIVE_HISTORY, [str(home), "load", layout, str(count)])
                 for _ in range(3)]  # fmt: skip
        out[f"{layout}_s"] = statistics.median(r["s"] for r in loads)
        out[f"{layout}_mb"] = statistics.median(r["rss_mb"] for r in loads)
    given = timed_script(ARCHIVE_HISTORY, [str(folder / "archived"), "given", "archived",
                                           str(HISTORY_DONE)])  # fmt: skip
    out["given_s"], out["given_mb"] = given["s"], given["mb"]
    return out


# -- baselines -------------------------------------------------------------------------------


def sequential_loop(url: str, sends: Path, folder: Path) -> dict[str, Any]:
    """What a user might write first: one request after another, dlt dict rows, merge."""
    code = SEQUENTIAL_LOOP.format(url=url, sends=str(sends), folder=str(folder), key=KEY)
    return timed_script(code)


SEQUENTIAL_LOOP = r"""
import csv, json, time
from datetime import datetime, timezone
import dlt, requests
pairs = list(csv.DictReader(open("{sends}")))
started = time.monotonic()
rows = []
session = requests.Session()
session.headers["Authorization"] = "Bearer {key}"
today = datetime.now(timezone.utc).date()
for p in pairs:
    r = session.get("{url}/sends/data_series", params={{"campaign_id": p["campaign_id"],
        "send_id": p["send_id"], "length": 15, "ending_at": f"{{today}}T23:59:59+00:00"}}, timeout=60)
    r.raise_for_status()
    for day in r.json()["data"]:
        for channel, variations in day["messages"].items():
            for v in variations:
                rows.append({{"campaign_id": p["campaign_id"], "send_id": p["send_id"],
                              "date": day["time"], "channel": channel, **v}})
pipeline = dlt.pipeline("loop", destination=dlt.destinations.duckdb("{folder}.duckdb"),
                        pipelines_dir="{folder}", dataset_name="braze")
pipeline.run(rows, table_name="send_variation_daily", write_disposition="merge",
             primary_key=["campaign_id", "send_id", "date", "channel", "variation_name"])
print(json.dumps({{"pairs": len(pairs), "seconds": time.monotonic() - started}}))
"""


def rest_api_baseline(url: str, sends: Path, folder: Path) -> dict[str, Any]:
    """dlt's own REST API source, configured for the same endpoint (pairs from the sends file)."""
    code = REST_API.format(url=url, sends=str(sends), folder=str(folder), key=KEY)
    return timed_script(code)


REST_API = r"""
import csv, json, time
from datetime import datetime, timezone
import dlt
from dlt.sources.rest_api import rest_api_resources
pairs = list(csv.DictReader(open("{sends}")))
today = datetime.now(timezone.utc).date()

@dlt.resource(name="pairs", selected=False)
def pairs_resource():
    yield pairs  # one page: rest_api expects pages of parent items

@dlt.source(name="braze_rest_api")
def source():
    config = {{
        "client": {{"base_url": "{url}", "auth": {{"type": "bearer", "token": "{key}"}},
                   "paginator": "single_page"}},
        "resources": [
            pairs_resource,
            {{"name": "data_series", "endpoint": {{
                "path": "sends/data_series", "data_selector": "data",
                "params": {{
                    "campaign_id": "{{resources.pairs.campaign_id}}",
                    "send_id": "{{resources.pairs.send_id}}",
                    "length": 15, "ending_at": f"{{today}}T23:59:59+00:00"}}}},
             "write_disposition": "append"}},
        ],
    }}
    yield from rest_api_resources(config)

started = time.monotonic()
pipeline = dlt.pipeline("rest", destination=dlt.destinations.duckdb("{folder}.duckdb"),
                        pipelines_dir="{folder}", dataset_name="braze")
pipeline.run(source())
print(json.dumps({{"pairs": len(pairs), "seconds": time.monotonic() - started}}))
"""


def timed_script(code: str, args: list[str] | None = None) -> dict[str, Any]:
    """Runs `code` in a fresh interpreter; its last output line is the JSON of its measures."""
    result = subprocess.run(
        [sys.executable, "-c", code, *(args or [])],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------


def render(rows: list[tuple[str, str, str]]) -> str:
    from braze_sends.report import table

    header = (
        f"# braze-sends benchmark\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"`make bench` (BENCH_PAIRS={PAIRS}, BENCH_BASELINE_PAIRS={BASELINE_PAIRS}, "
        f"BENCH_RATE={RATE:g})\n\n```"
    )
    return header + "\n" + table(["measure", "value", "note"], rows) + "\n```"


if __name__ == "__main__":
    sys.exit(main())

"""The `braze-sends` command line: run, demo, sandbox (and status, register, views).

Exit codes:
    0  every due pair was pulled and loaded (or the views were created)
    1  some pairs failed (recorded in `sends`; the others loaded; failed ones are retried later)
    2  usage or configuration error (bad key, missing permission, wrong URL, bad sends file,
       out-of-range option): nothing was loaded; the message says what to fix
    3  another run of the same pipeline is in progress: this one did nothing
    4  (status) a send is at risk of closing without a capture, or expired uncaptured
    5  the destination failed: the data is kept in a pending load package, loaded by the next run

The API key is never taken on the command line (it would show in `ps`): set it in
`.dlt/secrets.toml` or `SOURCES__BRAZE__API_KEY`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from braze_sends import logs, status
from braze_sends.errors import (
    BrazeAPIError,
    BrazeSendsError,
    ConfigurationError,
    DestinationError,
    RunLockedError,
)

logger = logging.getLogger("braze_sends.cli")

EXIT_OK, EXIT_PAIRS_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_AT_RISK, EXIT_DESTINATION = range(6)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.log_level, args.log_format, secrets=_configured_secrets())
    try:
        return args.handler(args)
    except RunLockedError as exc:
        _error(str(exc))
        return EXIT_LOCKED
    except DestinationError as exc:
        _error(str(exc))
        return EXIT_DESTINATION
    except (ConfigurationError, BrazeAPIError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except BrazeSendsError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted; the next run completes what this one left")
        return 130
    except Exception as exc:  # the destination (or dlt) failed after the data was captured
        from dlt.pipeline.exceptions import PipelineStepFailed

        if isinstance(exc, PipelineStepFailed):
            _error(
                f"the {exc.step} step failed: {_short(exc)}\nNothing captured is lost: it stays "
                "in a pending load package that the next run loads first."
            )
            return EXIT_DESTINATION
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braze-sends",
        description="Capture Braze send analytics before Braze deletes them (14 days).",
        epilog="Exit codes: 0 ok, 1 some pairs failed, 2 usage/configuration, 3 locked, "
        "4 sends at risk (status), 5 destination failed.",
    )
    parser.set_defaults(handler=lambda _: parser.print_help() or EXIT_USAGE)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = _command(commands, "run", _run, "pull every due send and load it")
    _add_pipeline_options(run)
    run.add_argument(
        "--sends",
        metavar="FILE",
        help="CSV of pairs to register: campaign_id,send_id[,sent_at] (config: sends_file)",
    )
    run.add_argument("--workers", type=int, help="requests in flight (config: workers)")
    run.add_argument(
        "--requests-per-hour",
        type=float,
        help="this pipeline's share of Braze's 250,000/h pool (config: requests_per_hour)",
    )
    run.add_argument(
        "--max-requests",
        type=int,
        help="at most this many requests this run (most urgent sends first)",
    )
    run.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="start no new request after this many seconds",
    )
    run.add_argument("--chunk-pairs", type=int, metavar="N",
                     help="pairs per load (config: chunk_pairs; default 1000; 0: one load): bounds "
                     "memory, and a killed run keeps the chunks it completed")  # fmt: skip
    run.add_argument("--timezone", help="the workspace's time zone (config: timezone, default UTC)")
    run.add_argument("--item-format", choices=("arrow", "rows"), help=argparse.SUPPRESS)

    status = _command(commands, "status", _status, "where every send stands; exit 4 on alarms")
    _add_pipeline_options(status)
    status.add_argument("--json", action="store_true", help="a JSON document instead of text")
    status.add_argument(
        "--horizon-hours",
        type=float,
        help="alarm for sends closing within this many hours without a pull in "
        "the last 24 h (config: at_risk_hours, default 48)",
    )
    status.add_argument(
        "--expired-alarm-days",
        type=float,
        default=7.0,
        help="alarm for sends expired within this many days, at most 30 (default %(default)s)",
    )
    status.add_argument("--limit", type=int, default=50, help="open sends listed (default 50)")
    status.add_argument("--timezone", help="the workspace's time zone (config: timezone)")

    register = _command(
        commands, "register", _register, "remember pairs for later runs, without pulling them"
    )
    _add_pipeline_options(register)
    register.add_argument("campaign_id", nargs="?", help="the campaign's API identifier")
    register.add_argument("send_id", nargs="?", help="the send's identifier")
    register.add_argument("--sent-at", help="ISO-8601 date or datetime of the send")
    register.add_argument("--sends", metavar="FILE", help="register every pair of a sends file")
    register.add_argument("--timezone", help="the workspace's time zone (config: timezone)")

    views = _command(
        commands, "views", _views, "create (or replace) the reporting views in the destination"
    )
    _add_pipeline_options(views)

    demo = _command(commands, "demo", _demo, "load the built-in sandbox's sends into DuckDB")
    demo.add_argument(
        "--db", default="braze_sends.duckdb", help="DuckDB file (default %(default)s)"
    )
    demo.add_argument("--pipelines-dir", help="dlt's working folder (default ~/.dlt/pipelines)")
    demo.add_argument("--seed", type=int, default=7, help="sandbox catalog seed")

    sandbox = _command(commands, "sandbox", _sandbox, "serve the Braze API sandbox")
    from braze_sends.sandbox import cli as sandbox_cli

    sandbox_cli.add_arguments(sandbox)
    return parser


def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int], help: str):
    command = commands.add_parser(name, help=help, description=help)
    command.set_defaults(handler=handler)
    command.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="default INFO",
    )
    command.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="json: one JSON object per line, for log shippers",
    )
    return command


def _add_pipeline_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--destination",
        help="any dlt destination: duckdb, postgres, filesystem (a Delta lake), bigquery, ... "
        "(config: destination_type under [pipelines.braze_sends]; default duckdb)",
    )
    command.add_argument(
        "--dataset",
        help="dataset: schema, or folder on a lake (config: dataset_name; default braze)",
    )
    command.add_argument("--pipeline-name", default="braze_sends", help="default %(default)s")
    command.add_argument("--pipelines-dir", help="dlt's working folder (default ~/.dlt/pipelines)")


def _run(args: argparse.Namespace) -> int:
    from braze_sends import memory, report
    from braze_sends.runner import run_pipeline

    memory.bound_allocators()  # before the pull threads start
    pipeline = _pipeline(args)
    options = {
        "sends_file": args.sends,
        "workers": args.workers,
        "requests_per_hour": args.requests_per_hour,
        "max_requests": args.max_requests,
        "time_budget": args.time_budget,
        "timezone": args.timezone,
        "item_format": args.item_format,
    }
    chunk = args.chunk_pairs
    if chunk is None:
        import dlt

        chunk = dlt.config.get("sources.braze.chunk_pairs", int)
    if chunk is not None:
        options["chunk_pairs"] = chunk or None
    result = run_pipeline(pipeline, **{k: v for k, v in options.items() if v is not None})
    print(report.run_summary(result.summary, pending_loaded=result.pending_loaded))
    for line in status.warnings(_status_report(pipeline, args.timezone, None)):
        logger.warning(line)
    return EXIT_PAIRS_FAILED if result.failed else EXIT_OK


def _status(args: argparse.Namespace) -> int:
    import json

    from braze_sends.capture import check_range
    from braze_sends.registry import ARCHIVE_AFTER

    # Past that, a send is archived: counted, no longer listed.
    check_range("--expired-alarm-days", args.expired_alarm_days, 0, ARCHIVE_AFTER.days)
    report = _status_report(
        _pipeline(args),
        args.timezone,
        args.horizon_hours,
        expired_alarm_days=args.expired_alarm_days,
    )
    if args.json:
        print(json.dumps(status.to_json(report), indent=2))
    else:
        print(status.render(report, limit=args.limit))
    return EXIT_AT_RISK if report.alarm else EXIT_OK


def _register(args: argparse.Namespace) -> int:
    from braze_sends.runner import run_pipeline
    from braze_sends.sends_file import SendPair, check_id, parse_sent_at

    if bool(args.sends) == bool(args.campaign_id):
        raise ConfigurationError(
            "give CAMPAIGN_ID SEND_ID (and optionally --sent-at), or --sends FILE"
        )
    pairs = []
    if args.campaign_id:
        if not args.send_id:
            raise ConfigurationError("give both CAMPAIGN_ID and SEND_ID")
        problems = [
            p
            for p in (check_id("campaign_id", args.campaign_id), check_id("send_id", args.send_id))
            if p
        ]
        if problems:
            raise ConfigurationError("; ".join(problems))
        sent_at = None
        if args.sent_at:
            try:
                sent_at = parse_sent_at(args.sent_at, _timezone(args.timezone))
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        pairs.append(SendPair(args.campaign_id, args.send_id, sent_at))
    pipeline = _pipeline(args)
    options = {
        "pairs": pairs or None,
        "sends_file": args.sends,
        "max_requests": 0,  # register only: no request, so no key needed
        "timezone": args.timezone,
    }
    result = run_pipeline(pipeline, **{k: v for k, v in options.items() if v is not None})
    new = result.summary.get("registered", 0)
    print(f"registered {new:,} new pair(s); {result.summary.get('known', 0):,} registered in all")
    return EXIT_OK


def _views(args: argparse.Namespace) -> int:
    from braze_sends.views import create_views

    created = create_views(_pipeline(args))
    if not created:
        print("no reporting view created: nothing is loaded yet (run `braze-sends run` first)")
    else:
        print("reporting views created: " + ", ".join(created))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from braze_sends import demo, memory

    memory.bound_allocators()
    print(demo.run_demo(db=args.db, pipelines_dir=args.pipelines_dir, seed=args.seed))
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    from braze_sends.sandbox import cli as sandbox_cli

    return sandbox_cli.serve(args)


def _timezone(name: str | None):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    import dlt

    name = name or dlt.config.get("sources.braze.timezone", str) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"timezone {name!r} is not an IANA time zone name") from None


def _pipeline(args: argparse.Namespace):
    from braze_sends.runner import make_pipeline

    return make_pipeline(
        pipeline_name=args.pipeline_name,
        destination=args.destination,
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
    )


def _status_report(pipeline, timezone, horizon_hours, *, expired_alarm_days=7.0):
    from datetime import datetime, timedelta
    from datetime import timezone as dt_timezone

    import dlt

    from braze_sends import registry
    from braze_sends.runner import source_state

    hours = horizon_hours or dlt.config.get("sources.braze.at_risk_hours", float) or 48.0
    state = source_state(pipeline)
    return status.build(
        registry.load_records(state).values(),
        archived=registry.archived_totals(state),
        now=datetime.now(dt_timezone.utc),
        tz=_timezone(timezone),
        horizon=timedelta(hours=hours),
        expired_alarm=timedelta(days=expired_alarm_days),
    )


def _configured_secrets() -> list[str]:
    """The key as configured, so logging can mask it wherever it might slip in."""
    try:
        import dlt
        from dlt.common.typing import TSecretStrValue

        # Typed as a secret, or dlt would record the value in its run trace.
        key = dlt.secrets.get("sources.braze.api_key", TSecretStrValue)
    except Exception:  # noqa: BLE001 - broken config is reported by the run itself
        return []
    return [key] if key else []


def _error(message: str) -> None:
    print(f"braze-sends: error: {message}", file=sys.stderr)


def _short(exc: BaseException, limit: int = 600) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())

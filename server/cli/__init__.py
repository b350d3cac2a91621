"""The baton command line: serve, run and watch workflows, approve, pause and cancel them, run the demo."""

from server.cli._client import follow, watch_with_view
from server.cli._common import DEFAULT_TARGET, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, UsageError
from server.cli._journey import load_user_context
from server.cli._parser import build_parser, main

__all__ = [
    # The entry point (the `baton` console script).
    "build_parser",
    "main",
    # Exit statuses and the errors behind them.
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "UsageError",
    # Client helpers, for tests and scripts.
    "DEFAULT_TARGET",
    "follow",
    "load_user_context",
    "watch_with_view",
]

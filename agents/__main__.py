"""Runs the reference agent fleet: ``python -m agents --listen HOST:PORT``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from agents import FleetConfig, serve_fleet


def parse_args(argv: list[str] | None = None) -> FleetConfig:
    """Returns the fleet configuration the command line asks for."""
    defaults = FleetConfig()
    parser = argparse.ArgumentParser(
        prog="python -m agents", description="Serve the seven reference agents and fault injection."
    )
    parser.add_argument("--listen", default=defaults.listen, help="HOST:PORT; port 0 picks one (default %(default)s)")
    parser.add_argument(
        "--latency", type=float, default=defaults.latency_ms, metavar="MS", help="latency per operation"
    )
    parser.add_argument(
        "--error-rate", type=float, default=defaults.error_rate, metavar="R", help="fraction of operations that fail"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of injected failures; 0 is random")
    parser.add_argument(
        "--ledger",
        default=defaults.ledger_path,
        metavar="PATH",
        help="Automation's SQLite ledger (default %(default)s)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="serve baton.v1.FaultInjection: any caller may then make the agents fail, stall or exit (default off)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=defaults.max_message_bytes,
        metavar="N",
        help="largest request accepted and response sent, in bytes (default %(default)s)",
    )
    args = parser.parse_args(argv)
    config = FleetConfig(
        listen=args.listen,
        ledger_path=args.ledger,
        latency_ms=args.latency,
        error_rate=args.error_rate,
        seed=args.seed,
        faults=args.faults,
        max_message_bytes=args.max_message_bytes,
    )
    try:
        config.validate()
    except ValueError as error:
        parser.error(str(error))
    return config


def main(argv: list[str] | None = None) -> None:
    """Serves the fleet until SIGTERM or SIGINT."""
    config = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve_fleet(config))


if __name__ == "__main__":
    main()

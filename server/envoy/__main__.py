"""Writes Envoy configurations for a deployment: `python -m server.envoy front|agents …`.

    python -m server.envoy front --listen 0.0.0.0:8080 \\
        --orchestrator 10.0.0.11:50051 --orchestrator 10.0.0.12:50051 --out deploy/envoy
    python -m server.envoy agents --listen 0.0.0.0:50070 --agents agents.yaml --out deploy/envoy
    python -m server.envoy helm --out helm/baton/files

`front` writes front-proxy.yaml and baton.pb (the transcoder's descriptor set), `agents` writes
agents-proxy.yaml, `helm` the chart's envoy.yaml (a Helm template) and baton.pb; `--validate`
runs `envoy --mode validate` on what was written (for `helm`, on it rendered with sample values).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from server.config import ConfigError, agent_endpoints
from server.envoy.config import AgentsProxy, Endpoint, FrontProxy, agents_proxy_config, dump, front_proxy_config
from server.envoy.descriptors import descriptor_set_bytes
from server.envoy.helm import helm_front_proxy, render_sample, sample_values
from server.envoy.process import EnvoyError, envoy_binary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server.envoy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    front = commands.add_parser("front", help="the front proxy: gRPC and the seed's REST API over the orchestrators")
    front.add_argument("--listen", default="0.0.0.0:8080", metavar="HOST:PORT", help="where clients connect")
    front.add_argument(
        "--orchestrator",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="an orchestrator replica (repeat for each; a DNS name resolves to every address behind it)",
    )
    front.add_argument(
        "--descriptor-path",
        metavar="PATH",
        help="where Envoy will find baton.pb (default: the file written into --out)",
    )

    agents = commands.add_parser("agents", help="the agents' proxy: a cluster of replicas per agent")
    agents.add_argument("--listen", default="0.0.0.0:50070", metavar="HOST:PORT", help="where orchestrators connect")
    agents.add_argument(
        "--agents",
        required=True,
        metavar="HOST:PORT|FILE.yaml",
        help="one address serving all seven agents, or a YAML file mapping each agent to its replicas",
    )

    helm = commands.add_parser("helm", help="the Helm chart's front proxy (files/envoy.yaml and files/baton.pb)")

    for command, port in ((front, 9901), (agents, 9902)):
        command.add_argument("--admin", default=f"127.0.0.1:{port}", metavar="HOST:PORT", help="Envoy's admin endpoint")
    for command in (front, agents, helm):
        command.add_argument("--out", default=".", metavar="DIR", help="the directory to write into (default .)")
        command.add_argument("--validate", action="store_true", help="run `envoy --mode validate` on the result")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the configuration the arguments describe; returns the exit status."""
    args = _parser().parse_args(argv)
    out = Path(args.out)
    try:
        path, text = _configuration(args, out)
    except (ValueError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.command in ("front", "helm"):
        (out / "baton.pb").write_bytes(descriptor_set_bytes())
    path.write_text(text)
    print(f"wrote {path}")
    if not args.validate:
        return 0
    if args.command == "helm":
        # A template: validate it rendered with sample values, as the chart would render it.
        sample = render_sample(text, sample_values(str((out / "baton.pb").resolve())))
        with tempfile.TemporaryDirectory() as tmp:
            return _validate(Path(tmp) / "envoy.yaml", sample)
    return _validate(path, text)


def _configuration(args: argparse.Namespace, out: Path) -> tuple[Path, str]:
    """The file to write and its text.

    Raises:
        ValueError, ConfigError: an argument is wrong; the message names it.
    """
    if args.command == "helm":
        return out / "envoy.yaml", helm_front_proxy()
    admin = Endpoint.parse(args.admin, "--admin")
    listen = Endpoint.parse(args.listen, "--listen")
    if args.command == "front":
        spec = FrontProxy(
            listen=listen,
            orchestrators=tuple(Endpoint.parse(o, "--orchestrator") for o in args.orchestrator),
            descriptor_path=args.descriptor_path or str((out / "baton.pb").resolve()),
            admin=admin,
        )
        return out / "front-proxy.yaml", dump(front_proxy_config(spec))
    endpoints = agent_endpoints(args.agents)
    replicas = {a: tuple(Endpoint.parse(e, f"--agents {a}") for e in es) for a, es in endpoints.items()}
    agents = AgentsProxy(listen=listen, agents=replicas, admin=admin)
    return out / "agents-proxy.yaml", dump(agents_proxy_config(agents))


def _validate(path: Path, text: str) -> int:
    """Runs `envoy --mode validate` on `text` written at `path`; prints its verdict."""
    try:
        binary = envoy_binary()
    except EnvoyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    path.write_text(text)
    checked = subprocess.run([binary, "--mode", "validate", "-c", str(path)], capture_output=True, text=True)
    verdict = checked.stdout.strip().splitlines()[-1:] or checked.stderr.strip().splitlines()[-1:]
    print(*verdict)
    return 0 if checked.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

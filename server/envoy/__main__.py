"""Writes Envoy configurations for a deployment: `python -m server.envoy front|agents …`.

    python -m server.envoy front --listen 0.0.0.0:8080 \\
        --orchestrator 10.0.0.11:50051 --orchestrator 10.0.0.12:50051 --out deploy/envoy
    python -m server.envoy agents --listen 0.0.0.0:50070 --agents agents.yaml --out deploy/envoy
    python -m server.envoy helm --out helm/baton/files

`front` writes front-proxy.yaml and baton.pb (the transcoder's descriptor set), `agents` writes
agents-proxy.yaml, `helm` the chart's envoy.yaml and envoy-tls.yaml (Helm templates), sds/ and
baton.pb; `--validate` runs `envoy --mode validate` on what was written (for `helm`, on it
rendered with sample values). With TLS options, `front` and `agents` also write the SDS files
Envoy reads the certificates through (server/envoy/tls.py):

    python -m server.envoy front --orchestrator 10.0.0.11:50051 --out deploy/envoy \
        --tls-cert /certs/front/tls.crt --tls-key /certs/front/tls.key \
        --upstream-tls-cert /certs/envoy/tls.crt --upstream-tls-key /certs/envoy/tls.key \
        --upstream-tls-ca /certs/envoy/ca.crt --upstream-server-name orchestrator.baton.svc
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
from server.envoy.helm import CONFIG_DIR, helm_front_proxy, helm_sds_files, render_sample, sample_values
from server.envoy.process import EnvoyError, envoy_binary
from server.envoy.tls import Certificates, Tls, sds_files


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
    for command in (front, agents):
        tls = command.add_argument_group("TLS (paths as Envoy sees them; see the README's TLS section)")
        tls.add_argument("--tls-cert", default="", metavar="FILE", help="serve TLS on the listener with this chain")
        tls.add_argument("--tls-key", default="", metavar="FILE", help="its key (in the same directory)")
        tls.add_argument("--tls-ca", default="", metavar="FILE", help="require client certificates from this CA")
        tls.add_argument("--upstream-tls-cert", default="", metavar="FILE", help="Envoy's client certificate upstream")
        tls.add_argument("--upstream-tls-key", default="", metavar="FILE", help="its key (in the same directory)")
        tls.add_argument(
            "--upstream-tls-ca", default="", metavar="FILE", help="talk TLS upstream, verifying against this CA"
        )
        tls.add_argument(
            "--upstream-server-name", default="", metavar="NAME", help="the name upstream certificates must hold (SNI)"
        )
        tls.add_argument(
            "--sds-dir", metavar="DIR", help="where Envoy will find the SDS files (default: --out, as written)"
        )
    for command in (front, agents, helm):
        command.add_argument("--out", default=".", metavar="DIR", help="the directory to write into (default .)")
        command.add_argument("--validate", action="store_true", help="run `envoy --mode validate` on the result")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the configuration the arguments describe; returns the exit status."""
    args = _parser().parse_args(argv)
    out = Path(args.out)
    try:
        files = _configuration(args, out)
    except (ValueError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.command in ("front", "helm"):
        (out / "baton.pb").write_bytes(descriptor_set_bytes())
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if not args.validate:
        return 0
    if args.command == "helm":
        # Templates: validate them rendered with sample values, as the chart would render them.
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in helm_sds_files().items():
                (Path(tmp) / name).write_text(text)
            values = {**sample_values(str((out / "baton.pb").resolve())), CONFIG_DIR: tmp}
            return max(
                _validate(Path(tmp) / name, render_sample(files[out / name], values))
                for name in ("envoy.yaml", "envoy-tls.yaml")
            )
    return _validate(*next(iter(files.items())))


def _configuration(args: argparse.Namespace, out: Path) -> dict[Path, str]:
    """The files to write and their texts, the configuration first.

    Raises:
        ValueError, ConfigError: an argument is wrong; the message names it.
    """
    if args.command == "helm":
        return {
            out / "envoy.yaml": helm_front_proxy(),
            out / "envoy-tls.yaml": helm_front_proxy(tls=True),
            **{out / "sds" / name: text for name, text in helm_sds_files().items()},
        }
    admin = Endpoint.parse(args.admin, "--admin")
    listen = Endpoint.parse(args.listen, "--listen")
    tls = _tls(args, out)
    sds = {out / name: text for name, text in sds_files(tls).items()}
    if args.command == "front":
        spec = FrontProxy(
            listen=listen,
            orchestrators=tuple(Endpoint.parse(o, "--orchestrator") for o in args.orchestrator),
            descriptor_path=args.descriptor_path or str((out / "baton.pb").resolve()),
            admin=admin,
            tls=tls,
        )
        return {out / "front-proxy.yaml": dump(front_proxy_config(spec)), **sds}
    endpoints = agent_endpoints(args.agents)
    replicas = {a: tuple(Endpoint.parse(e, f"--agents {a}") for e in es) for a, es in endpoints.items()}
    agents = AgentsProxy(listen=listen, agents=replicas, admin=admin, tls=tls)
    return {out / "agents-proxy.yaml": dump(agents_proxy_config(agents)), **sds}


def _tls(args: argparse.Namespace, out: Path) -> Tls | None:
    """Envoy's TLS from the options; None when none is given."""
    listener = Certificates(args.tls_cert, args.tls_key, args.tls_ca)
    upstream = Certificates(args.upstream_tls_cert, args.upstream_tls_key, args.upstream_tls_ca)
    if listener == Certificates() and upstream == Certificates() and not args.upstream_server_name:
        return None
    return Tls(
        sds_dir=args.sds_dir or str(out.resolve()),
        listener=listener if listener != Certificates() else None,
        upstream=upstream if upstream != Certificates() else None,
        upstream_server_name=args.upstream_server_name,
    )


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

"""The developer's token tools: `baton auth keygen` (a key pair) and `baton auth token` (a signed test JWT)."""

from __future__ import annotations

import argparse
from pathlib import Path

from server.cli._common import EXIT_OK, UsageError


def cmd_auth_keygen(args: argparse.Namespace) -> int:
    """`baton auth keygen`: writes private.pem, public.pem and jwks.json into --out."""
    from server.auth.keys import generate_key_pair

    out = Path(args.out)
    if not args.force and any((out / name).exists() for name in ("private.pem", "public.pem", "jwks.json")):
        raise UsageError(f"--out {out}: it already holds a key pair (--force replaces it)")
    try:
        files = generate_key_pair(out, args.type)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror or exc}") from None
    print(f"private key (sign tokens with it; keep it secret): {files['private.pem']}")
    print(f"public key (baton serve --auth jwt --jwt-key ...):  {files['public.pem']}")
    print(f"the same public key as a JWKS, with its kid:        {files['jwks.json']}")
    return EXIT_OK


def cmd_auth_token(args: argparse.Namespace) -> int:
    """`baton auth token`: prints a JWT for --sub signed with --key."""
    from server.auth.keys import KeyFileError, load_private_key, mint_token, parse_ttl

    if not args.sub:
        raise UsageError("--sub: required (the user the token authenticates)")
    try:
        ttl = parse_ttl(args.ttl)
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from None
    try:
        key = load_private_key(Path(args.key))
    except KeyFileError as exc:
        raise UsageError(f"--{exc}") from None
    print(mint_token(key, args.sub, roles=args.role or (), ttl_seconds=ttl, issuer=args.issuer, audience=args.audience))
    return EXIT_OK


def add_auth_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `baton auth keygen` and `baton auth token`."""
    p = commands.add_parser(
        "auth",
        help="make keys and test tokens for --auth jwt",
        description="Developer tools for `baton serve --auth jwt`: a key pair, and tokens signed with it.",
    )
    auth_commands = p.add_subparsers(dest="auth_command", required=True, metavar="COMMAND")
    p = auth_commands.add_parser(
        "keygen",
        help="write a key pair for signing test tokens",
        description="Write private.pem (mode 0600), public.pem and jwks.json (the public key with its kid) "
        "into a directory. Give the server public.pem or jwks.json with --jwt-key.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write into (created if missing)")
    p.add_argument(
        "--type", choices=("ec", "rsa", "ed25519"), default="ec", help="ec (P-256, ES256; default), rsa or ed25519"
    )
    p.add_argument("--force", action="store_true", help="replace a key pair already in DIR")
    p.set_defaults(handler=cmd_auth_keygen)

    p = auth_commands.add_parser(
        "token",
        help="print a signed test token",
        description="Print a JWT for a subject, signed with a private key from `baton auth keygen`. "
        "Use it as `--token TOKEN` or `export BATON_TOKEN=...`.",
    )
    p.add_argument("--key", required=True, metavar="FILE", help="the PEM private key to sign with")
    p.add_argument("--sub", required=True, metavar="USER", help="the subject: the user the token authenticates")
    p.add_argument(
        "--role",
        action="append",
        choices=("user", "operator", "admin", "publisher"),
        help="a role to grant (repeatable; none: a user)",
    )
    p.add_argument(
        "--ttl", default="1h", metavar="DURATION", help="how long it is valid: 90s, 15m, 1h, 7d (default 1h)"
    )
    p.add_argument("--issuer", default="", metavar="ISS", help="the iss claim (match the server's --jwt-issuer)")
    p.add_argument("--audience", default="", metavar="AUD", help="the aud claim (match the server's --jwt-audience)")
    p.set_defaults(handler=cmd_auth_token)

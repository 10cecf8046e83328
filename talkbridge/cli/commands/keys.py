"""`talkbridge keys generate`: CURVE key pairs (and HMAC signing keys) for a sidecar and its clients."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="make keys for a sidecar reachable beyond this machine")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate",
        help="write NAME.key (public, share it) and NAME.key_secret (keep it private)",
        description=(
            "Make a CURVE key pair. Give the server's .key to clients; put each client's .key in the "
            "folder the server's --allow names. Existing keys are never overwritten."
        ),
    )
    generate.add_argument("name", help="key name, e.g. server or blender-workstation")
    generate.add_argument("--dir", type=Path, default=Path("."), help="folder to write into (default: current)")
    generate.add_argument("--signing", action="store_true", help="also write NAME.hmac, a shared HMAC signing key")
    generate.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from talkbridge.bridge.security import SecurityConfigError, generate_keypair, generate_signing_key

    if not args.name or "/" in args.name or args.name.startswith("."):
        raise SecurityConfigError(f"{args.name!r} is not a usable key name (no slashes, no leading dot)")
    public, secret = generate_keypair(args.dir, args.name)
    print(f"public key: {public}")
    print(f"secret key: {secret} (keep private)")
    if args.signing:
        print(f"signing key: {generate_signing_key(args.dir / f'{args.name}.hmac')} (share with the server only)")
    return 0

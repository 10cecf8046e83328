"""`talkbridge ping ADDRESS`: the health check ops scripts use (exit 0 and the server's capabilities)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ping",
        help="check that a sidecar answers; print its version and capabilities",
        description="Exit 0 and print the server's version and capabilities, or exit 1 with the reason.",
    )
    parser.add_argument("address", nargs="?", default="tcp://127.0.0.1:5555", help="server address (default: %(default)s)")
    parser.add_argument("--server-key", type=Path, help="the server's CURVE public key (.key)")
    parser.add_argument("--client-key", type=Path, help="this client's CURVE key pair (.key_secret)")
    parser.add_argument("--signing-key", type=Path, help="shared HMAC key file, when the server has one")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the whole welcome as JSON")
    parser.set_defaults(func=run)


def describe_render_sizes(sizes: object) -> str:
    """``lite any even size 64..2048; sadtalker 256, 512`` from ``welcome.capabilities.render_sizes``."""
    if isinstance(sizes, list):  # a server that gives one list for all engines
        return ", ".join(str(size) for size in sizes) or "none"
    if not isinstance(sizes, dict) or not sizes:
        return "none"
    parts = []
    for engine, value in sizes.items():
        if isinstance(value, dict):
            parts.append(f"{engine} any even size {value.get('min')}..{value.get('max')}")
        else:
            parts.append(f"{engine} {', '.join(str(size) for size in value)}")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    from talkbridge.cli.sidecar_target import SidecarTarget

    client = SidecarTarget(args.address, args.server_key, args.client_key, args.signing_key).client()
    try:
        welcome = client.connect(timeout=args.timeout)
        rtt = client.ping(timeout=args.timeout)
    finally:
        client.close()
    if args.json:
        print(json.dumps({**welcome, "rtt_ms": round(rtt * 1000, 3)}, indent=2, sort_keys=True))
        return 0
    capabilities = welcome["capabilities"]
    print(f"{welcome['server']} at {args.address} (protocol {welcome['version']}, {rtt * 1000:.2f} ms)")
    print(f"engines: {', '.join(capabilities.get('engines', [])) or 'none'}")
    print(f"devices: {', '.join(capabilities.get('devices', []))}")
    print(f"render sizes: {describe_render_sizes(capabilities.get('render_sizes'))}")
    print(f"queued jobs: {capabilities.get('queued_jobs', 0)}")
    sys.stdout.flush()
    return 0

"""The `talkbridge` command line.

Each sub-command lives in its own module under :mod:`talkbridge.cli.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command never edits this file. Command
handlers return an exit code. Errors raised on purpose (:class:`TalkbridgeError`) print as one clear
line instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Sequence

from talkbridge._version import __version__

log = logging.getLogger("talkbridge")

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from every command module."""
    parser = argparse.ArgumentParser(
        prog="talkbridge",
        description="Audio-driven face animation: talking-head video and facial motion for 3D heads.",
    )
    parser.add_argument("--version", action="version", version=f"talkbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from talkbridge.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `talkbridge` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from talkbridge.core.errors import TalkbridgeError

    try:
        return int(args.func(args) or 0)
    except TalkbridgeError as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The `talkbridge` command line.

Each sub-command lives in its own module under :mod:`talkbridge.cli.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command never edits this file. Command
handlers return an exit code. Errors raised on purpose (:class:`TalkbridgeError`) and file-system
errors (a folder that cannot be created, a read-only place) print as one clear line instead of a
traceback. SIGTERM (job schedulers, `timeout`) is handled exactly like Ctrl-C: it raises
:class:`Terminated`, a ``KeyboardInterrupt``, so every cleanup path (ffmpeg stopped, partial files
removed) runs; the exit code is 143 instead of 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import signal
import sys
from typing import Sequence

from talkbridge._version import __version__
from talkbridge.interrupts import Terminated, sigterm_as_interrupt  # noqa: F401 (Terminated: part of this module's API)

log = logging.getLogger("talkbridge")

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


def describe_os_error(error: OSError) -> str:
    """One line for a file-system error: the path, what failed, and the system's reason."""
    reason = error.strerror or str(error)
    if error.filename is None:
        return reason
    where = str(error.filename) + (f" -> {error.filename2}" if error.filename2 else "")
    return f"{where}: cannot create or write there ({reason})"


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
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except TalkbridgeError as error:
        log.error("%s", error)
        return 1
    except OSError as error:  # e.g. an output folder under /proc or on a read-only file system
        log.error("%s", describe_os_error(error))
        return 1
    except Terminated:
        log.error("terminated (SIGTERM)")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

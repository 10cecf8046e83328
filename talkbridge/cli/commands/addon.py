"""`talkbridge addon build`: the installable Blender extension zips in `dist/`, two per platform.

Argument parsing only; what goes into the zips and why is :mod:`talkbridge.extension_build`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from talkbridge.extension_build import DEFAULT_CACHE, PLATFORMS, ROOT, TARGETS, build


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("addon", help="Blender extension tools", description="Blender extension tools.")
    actions = parser.add_subparsers(dest="addon_command", metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="build the installable extension zip(s) with bundled wheels",
        description="Build one installable Blender extension zip per platform into the output folder.",
    )
    build.add_argument("-o", "--output", type=Path, default=ROOT / "dist", help="output folder (default: %(default)s)")
    build.add_argument("--platform", action="append", choices=PLATFORMS + ("local",), help="platform(s) to build (default: all four)")
    build.add_argument(
        "--python", action="append", choices=tuple(TARGETS), dest="pythons",
        help="Blender Python(s) to build for: 3.11 = Blender 4.4-5.0, 3.13 = Blender 5.1 and later (default: both)",
    )
    build.add_argument("--wheel-cache", type=Path, default=DEFAULT_CACHE, help="folder of downloaded pyzmq wheels (default: %(default)s)")
    build.add_argument("--offline", action="store_true", help="never download; repack the installed pyzmq for the local platform and this Python")
    build.add_argument("--overwrite", action="store_true", help="replace existing zips")
    build.set_defaults(func=handle_build)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])



def handle_build(args: argparse.Namespace) -> int:
    for item in build(args.output, args.platform, args.wheel_cache, args.offline, args.overwrite, args.pythons):
        print(item.path)
    print(args.output / "index.json")
    return 0

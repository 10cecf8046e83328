"""`talkbridge models list|download|verify|path|adopt`: the weight files engines need.

Files go to a per-user store (``--dir`` or ``$TALKBRIDGE_MODELS`` overrides it); an existing SadTalker
``checkpoints/`` folder can be adopted in place. Downloads resume, are verified against published
sizes and sha256, and take their final name only when complete.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, download, verify or locate weight files",
                                   description=__doc__.split("\n\n")[1])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, help="weight store folder (default: $TALKBRIDGE_MODELS or the per-user data folder)")
    common.add_argument("--catalog", type=Path, help="JSON catalog replacing the built-in one (internal mirrors)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[common], help="every known file and whether it is present")
    listing.set_defaults(func=run_list)

    download = actions.add_parser("download", parents=[common], help="fetch files (default: what inference needs)")
    download.add_argument("names", nargs="*", help="file names or groups (sadtalker, sadtalker-legacy, face-alignment, gfpgan, audio2face-mark, audio2face-claire, audio2face-james, audio2face-v3, audio2emotion, all)")
    download.add_argument("--torch-home", type=Path, help="where face-alignment looks for weights (default: $TORCH_HOME)")
    download.add_argument("--progress-lines", action="store_true",
                          help="print 'progress NAME DONE TOTAL' lines (bytes) for a program to read, e.g. the Blender add-on")
    download.set_defaults(func=run_download)

    verify = actions.add_parser("verify", parents=[common], help="check sizes and sha256; exit 1 if anything is missing or broken")
    verify.add_argument("names", nargs="*", help="file names or groups (default: what inference needs)")
    verify.set_defaults(func=run_verify)

    path = actions.add_parser("path", parents=[common], help="print the checkpoint folder, or a file's path")
    path.add_argument("name", nargs="?", help="a file name (default: the SadTalker checkpoints folder)")
    path.set_defaults(func=run_path)

    adopt = actions.add_parser("adopt", parents=[common], help="use an existing SadTalker checkpoints/ folder in place")
    adopt.add_argument("folder", type=Path)
    adopt.set_defaults(func=run_adopt)


def _store(args: argparse.Namespace):
    from talkbridge.core.weights import CATALOG, WeightStore, load_catalog

    catalog = load_catalog(args.catalog) if args.catalog else CATALOG
    return WeightStore(args.dir, catalog)


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    print(f"store: {store.root}\ncheckpoints: {store.checkpoint_dir}")
    for entry in store.catalog:
        report = store.status(entry, deep=False)
        size = f"{entry.size / 1e6:8.1f} MB" if entry.size else "       ? MB"
        mark = "*" if entry.default else " "
        print(f"{mark} {entry.group:<17} {entry.name:<36} {size}  {report.status.value}")
    print("(* = downloaded by a plain `talkbridge models download`)")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from talkbridge.core.weights.catalog import FACE_ALIGNMENT, select
    from talkbridge.core.weights.download import DownloadError

    store = _store(args)
    failures = 0
    for entry in select(store.catalog, args.names):
        lines = ProgressLines(entry.name, entry.size) if args.progress_lines else None
        with tqdm(total=entry.size, unit="B", unit_scale=True, desc=entry.name, disable=None if lines is None else True,
                  leave=False) as bar:
            def progress(done: int, total: int | None) -> None:
                if total is not None:
                    bar.total = total
                bar.update(done)
                if lines is not None:
                    lines.update(done, total)

            try:
                report = store.download(entry, progress)
            except DownloadError as error:
                log.error("%s", error)
                failures += 1
                continue
        log.info("%s: %s (%s)", entry.name, report.status.value, report.path)
    if any(e.folder == FACE_ALIGNMENT for e in store.catalog):
        for seeded in store.seed_face_alignment(args.torch_home):
            log.info("face-alignment cache: %s", seeded)
    return 1 if failures else 0


class ProgressLines:
    """``progress NAME DONE TOTAL`` on stdout, at most every half second (a pipe shows no tqdm bar).

    ``done`` arrives in increments, as tqdm's ``update`` takes it; the line carries the running total.
    """

    INTERVAL_S = 0.5

    def __init__(self, name: str, total: int | None) -> None:
        self.name, self.total, self.done, self._last = name, total or 0, 0, 0.0

    def update(self, increment: int, total: int | None) -> None:
        import time

        self.done += increment
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._last >= self.INTERVAL_S or (self.total and self.done >= self.total):
            self._last = now
            print(f"progress {self.name} {self.done} {self.total}", flush=True)


def run_verify(args: argparse.Namespace) -> int:
    from talkbridge.core.weights.catalog import select

    store = _store(args)
    broken = 0
    for entry in select(store.catalog, args.names):
        report = store.status(entry, deep=True)
        broken += not report.status.usable
        detail = f" ({report.detail})" if report.detail else ""
        print(f"{report.status.value:<32} {report.path}{detail}")
    return 1 if broken else 0


def run_path(args: argparse.Namespace) -> int:
    store = _store(args)
    print(store.path(store.entry(args.name)) if args.name else store.checkpoint_dir)
    return 0


def run_adopt(args: argparse.Namespace) -> int:
    store = _store(args)
    reports = store.adopt(args.folder)
    for report in reports:
        print(f"{report.status.value:<32} {report.path}")
    if reports and reports[0].entry.group.startswith("audio2face"):
        print(f"{reports[0].entry.group}: {store.folder(reports[0].entry.folder)}")
    else:
        print(f"checkpoints: {store.checkpoint_dir}")
    return 0

"""`talkbridge batch MANIFEST -o OUTDIR`: many clips from a manifest, resumable, on one machine or many.

    talkbridge batch lines.csv -o out/                          # rows one after another, here
    talkbridge batch lines.jsonl -o out/ --sidecar tcp://gpu1:5555 tcp://gpu2:5555 --server-key ...
    talkbridge batch lines.csv -o out/ --ray auto               # a Ray cluster (`ray start` on each box)
    talkbridge batch voice_lines/ --portrait hero.png -o out/ --exports livelink,curves

The manifest is CSV with a header or JSON Lines: ``audio`` (required), ``portrait``, ``name``, any
job option under its long name (``seed``, ``pose_style`` or ``pose-style``, ...), ``transcript``,
``landmarks``, ``ref_eyeblink``, ``ref_pose`` (files), ``head``, ``exports`` and ``mouth``. Paths are relative
to the manifest. Each row writes what ``generate`` writes, named by ``name``, plus its exports, and
``OUTDIR/<name>.batch.json`` once complete; a rerun skips unchanged complete rows. Every row is
listed in ``OUTDIR/batch_report.json``; the exit status is 1 when any row failed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from talkbridge.cli.engine_flags import add_engine_flags, engine_options_from_args, refuse_engine_flags_for_remote
from talkbridge.cli.job_args import add_job_options
from talkbridge.core.jobs.options import OPTIONS

log = logging.getLogger(__name__)

DEFAULT_OPTION_FLAGS = tuple(name for name in OPTIONS if name not in ("transcript", "landmarks"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="make many clips from a manifest (CSV / JSON Lines / a folder of audio), resumably",
        description="Run every row of MANIFEST (CSV with a header, JSON Lines, or a folder of audio files with "
        "--portrait) and write each row's outputs to OUTDIR, with OUTDIR/batch_report.json listing every row. "
        "Rows already complete and unchanged are skipped. Exit status 1 if any row failed.",
    )
    parser.add_argument("manifest", type=Path, help="CSV with a header, JSON Lines (.jsonl), or a folder of audio files")
    parser.add_argument("-o", "--output-dir", type=Path, required=True, help="folder for every row's outputs and the report")
    parser.add_argument("--portrait", type=Path, help="portrait for rows that name none (needed for a folder of audio with SadTalker)")
    parser.add_argument("--head", type=Path, help="glTF head for rows' glb and preview exports that name none")
    parser.add_argument("--exports", default="", help="exports for rows that name none: glb,livelink,curves,curves_json,preview "
                        "(preview: the head rendered with the speech, <name>.preview.mp4; needs bpy)")
    parser.add_argument("--mouth", choices=("auto", "arkit", "visemes", "vrm"), default="auto",
                        help="mouth set for rows' glb and preview exports that name none (a 'mouth' column): default auto, "
                        "ARKit when the head has all of it, else Oculus visemes, else VRM vowels")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs that no earlier batch run recorded")
    parser.add_argument("--checkpoints", type=Path, help="SadTalker checkpoints folder (default: the model store's; on Ray, a path on every node)")
    add_engine_flags(parser)
    defaults = parser.add_argument_group("option defaults (a row's own cell wins)")
    add_job_options(defaults, DEFAULT_OPTION_FLAGS)
    where = parser.add_argument_group("where rows run (default: this process)")
    where.add_argument("--sidecar", metavar="ADDRESS", nargs="+", help="one or more `talkbridge serve` addresses; rows go to free devices")
    where.add_argument("--server-key", type=Path, help="the sidecars' CURVE public key (.key), for non-loopback addresses")
    where.add_argument("--client-key", type=Path, help="this client's CURVE key pair (.key_secret)")
    where.add_argument("--signing-key", type=Path, help="shared HMAC key file, when the sidecars have one")
    where.add_argument("--ray", metavar="ADDRESS", help="a Ray cluster's address (HOST:PORT, ray://..., auto), or 'local' to start Ray here")
    where.add_argument("--ray-actors", type=int, help="job actors on the cluster (default: one per GPU, else one per node)")
    parser.set_defaults(func=handle)


def make_backend(args: argparse.Namespace):
    """The backend the flags choose."""
    from talkbridge.core.errors import InputError

    keys = (args.server_key, args.client_key, args.signing_key)
    if args.sidecar and args.ray:
        raise InputError("choose one of --sidecar and --ray")
    if not args.sidecar and any(key is not None for key in keys):
        raise InputError("--server-key, --client-key and --signing-key only apply with --sidecar ADDRESS")
    if args.ray_actors is not None and not args.ray:
        raise InputError("--ray-actors only applies with --ray ADDRESS")
    if args.sidecar:
        from talkbridge.batch.backends import SidecarBackend
        from talkbridge.cli.sidecar_target import SidecarTarget

        refuse_engine_flags_for_remote(args, "--sidecar")
        return SidecarBackend([SidecarTarget(address, *keys) for address in args.sidecar])
    if args.ray:
        from talkbridge.cluster.batch_backend import RayBackend

        if args.ray_actors is not None and args.ray_actors < 1:
            raise InputError(f"--ray-actors must be at least 1, got {args.ray_actors}")
        return RayBackend(args.ray, args.checkpoints, args.ray_actors, engine_options=engine_options_from_args(args))
    from talkbridge.batch.backends import InProcessBackend

    return InProcessBackend(args.checkpoints, engine_options_from_args(args))


def handle(args: argparse.Namespace) -> int:
    from talkbridge.batch.manifest import ManifestDefaults, read_manifest
    from talkbridge.batch.runner import run_batch
    from talkbridge.exporters.job_exports import parse_export_kinds
    from talkbridge.exporters.mouth_source import parse_mouth_source

    defaults = ManifestDefaults(
        portrait=args.portrait.resolve() if args.portrait else None,
        head=args.head.resolve() if args.head else None,
        exports=",".join(parse_export_kinds(args.exports)),
        mouth=parse_mouth_source(args.mouth),
        options={name: getattr(args, name) for name in DEFAULT_OPTION_FLAGS if hasattr(args, name)},
    )
    rows = read_manifest(args.manifest, defaults)  # manifest-wide problems stop here, before any work
    report = run_batch(rows, args.output_dir, make_backend(args), overwrite=args.overwrite,
                       progress=not args.quiet, manifest=str(args.manifest))
    counts = report.counts
    print(f"{len(report.rows)} rows: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed")
    for row in report.rows:
        if row.status == "failed":
            print(f"  failed {row.name}: {row.reason}")
    print(f"report: {Path(args.output_dir) / 'batch_report.json'}")
    return 1 if report.failed else 0

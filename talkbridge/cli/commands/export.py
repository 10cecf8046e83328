"""`talkbridge export`: put a motion file on a 3D head (GLB), or write it as Live Link CSV / curves.

    talkbridge export clip.motion.npz --head character.glb -o character_talking.glb
    talkbridge export clip.motion.npz --bfm BFM_model_front.mat --recon portrait.mat -o person.glb
    talkbridge export clip.motion.npz --format livelink -o clip_livelink.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

FORMATS = ("glb", "livelink", "json", "csv")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="animate a glTF head with a motion file, or write Live Link Face CSV / JSON / CSV curves",
        description="Export a .motion.npz: onto a glTF 2.0 head (adds one named animation, keeps the rest), "
        "onto a person's 3DMM head built from BFM_model_front.mat, or as Live Link Face CSV / plain curves.",
    )
    parser.add_argument("motion", type=Path, help="the .motion.npz written by `talkbridge motion` or the sidecar")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.glb or .vrm, .csv or .json)")
    parser.add_argument("--format", choices=FORMATS, help="output kind (default: from the output's extension; "
                        ".csv means plain curves unless --format livelink)")
    parser.add_argument("--head", type=Path, help="the glTF 2.0 head (.glb or .gltf) to animate")
    parser.add_argument("--bfm", type=Path, help="BFM_model_front.mat: builds the 3DMM head (with --recon) and "
                        "retargets SadTalker expression to ARKit geometrically")
    parser.add_argument("--recon", type=Path, help="the portrait's recon coefficients (.mat with full_3dmm, or .npy "
                        "of 257 values) for building its 3DMM head")
    parser.add_argument("--audio", type=Path, help="the clip's audio: without --bfm, SadTalker motion gets its mouth "
                        "shapes from the viseme engine run on it")
    parser.add_argument("--map", type=Path, help="JSON name map {target: channel | null} overriding automatic matching")
    parser.add_argument("--mouth", choices=("auto", "arkit", "visemes", "vrm"), default="auto",
                        help="which of the head's mouth sets drives the mouth when it has several (default auto: "
                        "ARKit when complete, else Oculus visemes, else VRM vowels); the others stay at rest")
    parser.add_argument("--animation-name", default="talkbridge", help="name of the animation to add or replace")
    parser.add_argument("--head-node", help="node/joint that head pose drives (default: found by name, else one is added)")
    parser.add_argument("--pose-reference", choices=("first", "absolute"), default="first",
                        help="head rotation relative to the first frame (default) or SadTalker's absolute angles")
    parser.add_argument("--no-pose", action="store_true", help="do not animate head rotation")
    parser.add_argument("--translation-scale", type=float, default=0.0,
                        help="metres per 3DMM translation unit for head translation (0 = none; about 0.1 matches the BFM)")
    parser.add_argument("--fps", type=int, help="expected frame rate; a motion at another rate is an error")
    parser.add_argument("--save-motion", type=Path, help="also write the retargeted motion (with its expression source)")
    parser.add_argument("--report", type=Path, help="write the channel match report as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=handle)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = args.output.suffix.lower()
    if suffix == ".vrm":  # a VRM avatar is a GLB with its VRM extension kept
        return "glb"
    if suffix in (".glb", ".json", ".csv"):
        return suffix[1:]
    raise InputError("cannot tell the output format from the extension; pass --format", args.output)


def load_recon(path: Path) -> np.ndarray:
    """The 257 recon coefficients from SadTalker's preprocessing .mat (``full_3dmm``) or a .npy."""
    if not path.is_file():
        raise InputError("recon coefficient file not found", path)
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except Exception as error:  # scipy raises several types for unreadable files
        raise InputError(f"not a readable .mat file: {error}", path) from error
    if "full_3dmm" not in content:
        raise InputError("has no 'full_3dmm' entry (the 257-dim recon output SadTalker's preprocessing saves)", path)
    return np.asarray(content["full_3dmm"])


def handle(args: argparse.Namespace) -> int:
    from talkbridge.exporters.atomic import check_writable_target
    from talkbridge.exporters.motion_file import load_motion, save_motion
    from talkbridge.exporters.naming import load_name_map

    kind = _format(args)
    check_writable_target(args.output, args.overwrite)
    if args.save_motion:
        check_writable_target(args.save_motion, args.overwrite)
    if args.report:
        check_writable_target(args.report, args.overwrite)
    name_map = load_name_map(args.map) if args.map else None
    motion = load_motion(args.motion)
    if args.fps is not None and args.fps != motion.fps:
        raise InputError(f"frame-rate mismatch: the motion is {motion.fps} fps, --fps asked for {args.fps}", args.motion)

    model = None
    if args.bfm:
        from talkbridge.exporters.bfm import load_bfm

        model = load_bfm(args.bfm)
    if motion.arkit is None and (model is not None or args.audio):
        from talkbridge.exporters.job_exports import with_arkit

        mouth = None
        if model is None:
            from talkbridge.core.jobs.viseme_mouth import viseme_motion_for

            mouth = viseme_motion_for(Path(args.audio))
        motion = with_arkit(motion, model, mouth)
    if args.save_motion:
        save_motion(motion, args.save_motion, overwrite=args.overwrite)

    if kind == "livelink":
        from talkbridge.exporters.livelink import write_livelink_csv

        write_livelink_csv(motion, args.output, overwrite=args.overwrite, relative_pose=args.pose_reference == "first")
    elif kind in ("json", "csv"):
        from talkbridge.exporters.curves import write_curves_csv, write_curves_json

        writer = write_curves_json if kind == "json" else write_curves_csv
        writer(motion, args.output, overwrite=args.overwrite)
    else:
        _export_glb(args, motion, model, name_map)
    log.info("wrote %s", args.output)
    return 0


def _export_glb(args: argparse.Namespace, motion, model, name_map) -> None:
    from talkbridge.exporters.gltf import ExportOptions, add_animation, write_head_glb
    from talkbridge.exporters.mouth_source import parse_mouth_source

    options = ExportOptions(
        animation_name=args.animation_name,
        head_node=args.head_node,
        animate_pose=not args.no_pose,
        pose_reference=args.pose_reference,
        translation_scale=args.translation_scale,
        name_map=name_map,
        mouth=parse_mouth_source(args.mouth),
        fps=args.fps,
    )
    with tempfile.TemporaryDirectory(prefix="talkbridge-head-") as folder:
        head = args.head
        if head is None:
            if model is None or args.recon is None:
                raise InputError("a GLB export needs --head HEAD.glb, or --bfm and --recon to build the person's 3DMM head")
            from talkbridge.exporters.bfm import build_head_from_coefficients

            built = build_head_from_coefficients(model, load_recon(args.recon), name=args.output.stem)
            head = write_head_glb(built, Path(folder) / "head.glb")
        result = add_animation(head, motion, args.output, options, overwrite=args.overwrite)
    for line in result.report.summary().splitlines():
        log.info("%s", line)
    if args.report:
        from talkbridge.exporters.atomic import atomic_output

        content = {"frames": result.frames, "fps": result.fps, "head_node": result.head_node,
                   "added_pivot": result.added_pivot, "animated_nodes": result.animated_nodes,
                   "vrm": result.vrm_version, **result.report.to_dict()}
        with atomic_output(args.report, overwrite=args.overwrite) as temp:
            temp.write_text(json.dumps(content, indent=2), encoding="utf-8")

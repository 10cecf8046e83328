"""`talkbridge coeffs`: an engine's motion on its own, without video.

For users who already have a portrait's first-frame ``.mat`` (from the official preprocessing or
`talkbridge generate`) and want the per-frame 3DMM motion without rendering video: it writes the
official ``coeff_3dmm`` ``.mat`` and a talkbridge ``.motion.npz`` (plus its ``.motion.json``). With
``--engine audio2face`` it needs no portrait and writes the motion files only (ARKit, tongue, jaw,
eyes, emotion). Either way it is a motion-only job through :func:`talkbridge.api.run_job`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from talkbridge.cli.engine_flags import add_engine_flags, engine_options_from_args
from talkbridge.cli.job_args import add_job_options, job_options_from_args

log = logging.getLogger(__name__)

MOTION_ENGINES = ("sadtalker", "audio2face")
SADTALKER_ONLY = ("first_frame", "ref_eyeblink", "ref_pose")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "coeffs",
        help="audio (+ first-frame .mat) -> per-frame motion: SadTalker coefficients (.mat and .motion.npz) or Audio2Face's",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("audio", type=Path, help="speech file (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--engine", choices=MOTION_ENGINES, default="sadtalker",
                        help="sadtalker (default: needs --first-frame and --checkpoints) or audio2face (motion files only)")
    parser.add_argument("--first-frame", type=Path, help="the portrait's coeff_3dmm .mat (1 x 73 or 1 x 70); SadTalker only")
    parser.add_argument("--checkpoints", type=Path,
                        help="SadTalker checkpoints folder, or an Audio2Face-3D model folder (default for audio2face: the model store's)")
    parser.add_argument("-o", "--output", type=Path,
                        help="output .mat (audio2face: .motion.npz); the motion files take its name (default: beside the audio)")
    parser.add_argument("--ref-eyeblink", type=Path, help="coeff .mat of a reference video for expression/blinks")
    parser.add_argument("--ref-pose", type=Path, help="coeff .mat of a reference video whose head motion is added")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_engine_flags(parser)
    add_job_options(parser, ("size", "pose_style", "still", "seed", "expression_scale", "precision", "device", "emotion",
                             "fps", "identity"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from talkbridge.api import run_job
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.request import JobRequest
    from talkbridge.exporters.job_files import OutputPlan

    from talkbridge.core.errors import InputError

    if args.engine == "sadtalker":
        if args.first_frame is None or args.checkpoints is None:
            raise InputError("coeffs with SadTalker needs --first-frame FILE.mat and --checkpoints DIR")
    else:
        given = [f"--{name.replace('_', '-')}" for name in SADTALKER_ONLY if getattr(args, name) is not None]
        if given:
            raise InputError(f"--engine audio2face needs no portrait and takes no SadTalker inputs: drop {', '.join(given)}")
    options, _ = job_options_from_args(args, engine=args.engine)
    request = JobRequest(args.audio, None, options, first_frame=args.first_frame, ref_eyeblink=args.ref_eyeblink, ref_pose=args.ref_pose)
    suffix = ".mat" if args.engine == "sadtalker" else ".motion.npz"
    output = args.output or args.audio.with_name(args.audio.stem + suffix)
    name = output.name.removesuffix(".mat").removesuffix(".motion.npz")
    plan = OutputPlan(output.parent, name, overwrite=args.overwrite, video=False)
    cache = EngineCache(args.checkpoints, engine_options_from_args(args))
    result = run_job(request, plan, cache=cache, progress=not args.quiet)
    log.info("%d frames (%.2f s) from %s", result.frames, result.frames / 25, args.engine)
    print("\n".join(str(path) for path in result.files.values()))
    return 0

"""`talkbridge coeffs`: SadTalker's audio-to-coefficient step on its own.

For users who already have a portrait's first-frame ``.mat`` (from the official preprocessing or
`talkbridge generate`) and want the per-frame 3DMM motion without rendering video: it writes the
official ``coeff_3dmm`` ``.mat`` and a talkbridge ``.motion.npz`` (plus its ``.motion.json``). It is
a motion-only SadTalker job through :func:`talkbridge.api.run_job`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from talkbridge.cli.job_args import add_job_options, job_options_from_args

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "coeffs",
        help="audio + first-frame .mat -> per-frame SadTalker coefficients (.mat and .motion.npz)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("audio", type=Path, help="speech file (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--first-frame", type=Path, required=True, help="the portrait's coeff_3dmm .mat (1 x 73 or 1 x 70)")
    parser.add_argument("--checkpoints", type=Path, required=True, help="folder with the official SadTalker checkpoints")
    parser.add_argument("-o", "--output", type=Path,
                        help="output .mat; the motion files take its name (default: <audio>.mat beside the audio)")
    parser.add_argument("--ref-eyeblink", type=Path, help="coeff .mat of a reference video for expression/blinks")
    parser.add_argument("--ref-pose", type=Path, help="coeff .mat of a reference video whose head motion is added")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_job_options(parser, ("size", "pose_style", "still", "seed", "expression_scale", "precision", "device"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from talkbridge.api import run_job
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.request import JobRequest
    from talkbridge.exporters.job_files import OutputPlan

    options, _ = job_options_from_args(args, engine="sadtalker")
    request = JobRequest(args.audio, None, options, first_frame=args.first_frame, ref_eyeblink=args.ref_eyeblink, ref_pose=args.ref_pose)
    output = args.output or args.audio.with_suffix(".mat")
    name = output.name.removesuffix(".mat")
    plan = OutputPlan(output.parent, name, overwrite=args.overwrite, video=False)
    result = run_job(request, plan, cache=EngineCache(args.checkpoints), progress=not args.quiet)
    log.info("%d frames (%.2f s)", result.frames, result.frames / 25)
    print("\n".join(str(path) for path in result.files.values()))
    return 0

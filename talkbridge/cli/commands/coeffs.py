"""`talkbridge coeffs`: SadTalker's audio-to-coefficient step on its own.

For users who already have a portrait's first-frame ``.mat`` (from the official preprocessing or
`talkbridge generate`) and want the per-frame 3DMM motion without rendering video: it writes the
official ``coeff_3dmm`` ``.mat`` and a talkbridge ``.motion.npz``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

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
    parser.add_argument("-o", "--output", type=Path, help="output .mat (default: <audio>.coeff.mat beside the audio)")
    parser.add_argument("--size", type=int, choices=(256, 512), default=256, help="which combined checkpoint to read")
    parser.add_argument("--pose-style", type=int, default=0, help="head motion style 0..45")
    parser.add_argument("--still", action="store_true", help="keep the head at the first-frame pose")
    parser.add_argument("--ref-eyeblink", type=Path, help="coeff .mat of a reference video for expression/blinks")
    parser.add_argument("--ref-pose", type=Path, help="coeff .mat of a reference video whose head motion is added")
    parser.add_argument("--seed", type=int, default=0, help="random seed for blinks and pose latents")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from talkbridge.core.motion import Motion
    from talkbridge.core.sadtalker.audio2coeff import CoeffRequest
    from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff
    from talkbridge.core.sadtalker.engine import SadTalkerMotionEngine, pick_device
    from talkbridge.exporters.atomic import check_writable_target
    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from talkbridge.exporters.motion_file import save_motion

    mat_path = args.output or args.audio.with_suffix(".coeff.mat")
    motion_path = mat_path.with_name(mat_path.name.removesuffix(".mat").removesuffix(".coeff") + ".motion.npz")
    for target in (mat_path, motion_path):
        check_writable_target(target, args.overwrite)  # fail before any work, never after it
    pipeline = load_audio2coeff(AudioCheckpoints.find(args.checkpoints, args.size), pick_device(args.device))
    job = pipeline.prepare(
        CoeffRequest(
            audio=args.audio, first_frame=args.first_frame, pose_style=args.pose_style, still=args.still,
            ref_eyeblink=args.ref_eyeblink, ref_pose=args.ref_pose, seed=args.seed,
        )
    )
    chunks = []
    with tqdm(total=job.n_frames, unit="frame", desc="audio -> coefficients", disable=None) as bar:
        for chunk in job.chunks(250):
            chunks.append(chunk)
            bar.update(chunk.n_frames)
    motion = Motion.from_chunks(
        chunks,
        engine=SadTalkerMotionEngine.name,
        engine_version=SadTalkerMotionEngine.version,
        first_frame=job.first_frame,
        metadata={"pose_style": args.pose_style, "still": args.still, "seed": args.seed, "audio": str(args.audio)},
    )
    write_coeff_mat(mat_path, motion.coefficients(), overwrite=args.overwrite)
    save_motion(motion, motion_path, overwrite=args.overwrite)
    log.info("%d frames (%.2f s): wrote %s and %s", motion.n_frames, motion.n_frames / motion.fps, mat_path, motion_path)
    print(f"{mat_path}\n{motion_path}")
    return 0 if np.all(np.isfinite(motion.pose)) else 1

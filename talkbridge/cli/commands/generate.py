"""`talkbridge generate IMAGE AUDIO -o OUTDIR`: the main job, a talking-head video plus its motion files.

    talkbridge generate portrait.png speech.wav -o out/
    talkbridge generate portrait.png speech.wav -o out/ --engine sadtalker --preprocess full --still \\
        --pose-style 12 --expression-scale 1.2 --landmarks face.json
    talkbridge generate portrait.png speech.wav -o out/ --sidecar tcp://gpu-box:5555 \\
        --server-key gpu-box.key --client-key me.key_secret      # the networks run on the GPU box

Writes ``<name>.mp4``, ``<name>.motion.npz``, ``<name>.motion.json`` and, with SadTalker, the official
``<name>.mat``, each atomically and never over an existing file unless ``--overwrite``. This module
only parses arguments: the job is :func:`talkbridge.api.run_job`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from talkbridge.cli.engine_flags import add_engine_flags, engine_options_from_args, refuse_engine_flags_for_remote
from talkbridge.cli.job_args import add_job_options, job_options_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="make a talking-head video and its motion files from a portrait and speech",
        description="Turn a portrait and speech into OUTDIR/<name>.mp4 plus <name>.motion.npz and "
        "<name>.motion.json (and the official <name>.mat with SadTalker). auto uses SadTalker when its "
        "checkpoints are found, else the lite engine, whose video shows the built-in mannequin head.",
    )
    parser.add_argument("image", type=Path, help="portrait image (PNG/JPEG); the lite engine's video shows the mannequin")
    parser.add_argument("audio", type=Path, help="speech audio (wav, flac, mp3, ogg, ...)")
    parser.add_argument("-o", "--output-dir", type=Path, required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--name", help="output base name (default: the audio file's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_job_options(parser)
    files = parser.add_argument_group("SadTalker inputs")
    files.add_argument("--checkpoints", type=Path, help="SadTalker checkpoints folder, or with --engine audio2face an Audio2Face-3D model folder (default: the model store's)")
    files.add_argument("--ref-eyeblink", type=Path, help="reference video (or its coeff_3dmm .mat) driving eyes and expression")
    files.add_argument("--ref-pose", type=Path, help="reference video (or its coeff_3dmm .mat) whose head motion is added")
    add_engine_flags(parser)
    add_sidecar_arguments(parser)
    parser.set_defaults(func=handle)


def add_sidecar_arguments(parser: argparse.ArgumentParser) -> None:
    remote = parser.add_argument_group("remote rendering (a `talkbridge serve` on a GPU box)")
    remote.add_argument("--sidecar", metavar="ADDRESS", help="run the engine on this sidecar (e.g. tcp://gpu-box:5555); outputs are written here")
    remote.add_argument("--server-key", type=Path, help="the sidecar's CURVE public key (.key), for non-loopback addresses")
    remote.add_argument("--client-key", type=Path, help="this client's CURVE key pair (.key_secret)")
    remote.add_argument("--signing-key", type=Path, help="shared HMAC key file, when the sidecar has one")


def sidecar_target(args: argparse.Namespace):
    """The sidecar the flags name, or None to run here."""
    from talkbridge.cli.sidecar_target import SidecarTarget
    from talkbridge.core.errors import InputError

    keys = (args.server_key, args.client_key, args.signing_key)
    if args.sidecar is None:
        if any(key is not None for key in keys):
            raise InputError("--server-key, --client-key and --signing-key only apply with --sidecar ADDRESS")
        return None
    refuse_engine_flags_for_remote(args, "--sidecar")
    return SidecarTarget(args.sidecar, *keys)


def handle(args: argparse.Namespace) -> int:
    from talkbridge.api import run_job
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.request import JobRequest
    from talkbridge.exporters.job_files import OutputPlan

    options, files = job_options_from_args(args)
    request = JobRequest(
        audio=args.audio, image=args.image, options=options, ref_eyeblink=args.ref_eyeblink, ref_pose=args.ref_pose,
        transcript_file=files.get("transcript"), landmarks_file=files.get("landmarks"),
    )
    plan = OutputPlan(args.output_dir, args.name or args.audio.stem, overwrite=args.overwrite)
    cache = EngineCache(args.checkpoints, engine_options_from_args(args))
    result = run_job(request, plan, sidecar=sidecar_target(args), cache=cache, progress=not args.quiet)
    for kind, path in result.files.items():
        print(f"{kind + ':':13} {path}")
    return 0

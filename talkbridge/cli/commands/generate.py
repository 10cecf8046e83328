"""`talkbridge generate IMAGE AUDIO -o OUTDIR`: the main job, a talking-head video plus its motion files.

    talkbridge generate portrait.png speech.wav -o out/
    talkbridge generate portrait.png speech.wav -o out/ --transcript speech.txt --seed 3 --still

    talkbridge generate portrait.png speech.wav -o out/ --engine sadtalker --checkpoints SadTalker/checkpoints \
        --preprocess full --still --pose-style 12 --expression-scale 1.2 --landmarks face.json

    talkbridge generate portrait.png speech.wav -o out/ --sidecar tcp://gpu-box:5555 \
        --server-key gpu-box.key --client-key me.key_secret      # the networks run on the GPU box

Writes ``OUTDIR/<name>.mp4`` (the animated head with the speech muxed in), ``OUTDIR/<name>.motion.npz``
and ``OUTDIR/<name>.motion.json``, plus ``OUTDIR/<name>.mat`` (the official ``coeff_3dmm`` layout) with
the SadTalker engine; each atomically and never over an existing file unless ``--overwrite``.
``--engine auto`` uses SadTalker when its checkpoints are found (``--checkpoints`` or the model store),
else the weight-free lite engine, whose video shows the built-in mannequin head.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkbridge.core.errors import InputError

if TYPE_CHECKING:
    from talkbridge.cli.sidecar_target import SidecarTarget
    from talkbridge.pipeline.sadtalker_video import SadTalkerOptions

log = logging.getLogger(__name__)

ENGINES = ("auto", "sadtalker", "lite")


@dataclass
class GenerateOptions:
    """What `generate` needs besides its inputs; the demo and tests build one directly."""

    engine: str = "auto"
    transcript: Path | None = None
    seed: int = 0
    still: bool = False
    pose_intensity: float = 1.0
    overwrite: bool = False
    name: str | None = None
    size: int | None = None  # lite: 512; sadtalker: 256 or 512
    progress: bool = True
    checkpoints: Path | None = None
    device: str | None = None
    enhancer: str | None = None
    sadtalker: "SadTalkerOptions | None" = None  # preprocess, pose style, references, free view, ...
    sidecar: "SidecarTarget | None" = None  # run the networks on a `talkbridge serve` there


@dataclass
class GenerateResult:
    engine: str
    video: Path
    motion: Path
    summary: Path
    frames: int
    details: dict = field(default_factory=dict)
    coefficients: Path | None = None


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
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="auto: SadTalker when its checkpoints are found, else lite (default: %(default)s)")
    parser.add_argument("--transcript", type=Path, help="text file with the spoken words: aligned for better lip timing")
    parser.add_argument("--seed", type=int, default=0, help="seed for blinks and head motion (default: %(default)s)")
    parser.add_argument("--still", action="store_true", help="keep the head still (no procedural head motion)")
    parser.add_argument("--pose-intensity", type=float, default=1.0,
                        help="scale of head motion, 0 to 2 (default: %(default)s)")
    parser.add_argument("--name", help="output base name (default: the audio file's name)")
    parser.add_argument("--size", type=int, help="face size: 256 or 512 for SadTalker (default 256); video size for lite (default 512)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    st = parser.add_argument_group("SadTalker options")
    st.add_argument("--checkpoints", type=Path, help="SadTalker checkpoints folder (default: the model store's)")
    st.add_argument("--preprocess", choices=("crop", "extcrop", "resize", "full", "extfull"), default="crop",
                    help="how the portrait is cropped; full/extfull paste the face back into the photo (default: %(default)s)")
    st.add_argument("--pose-style", type=int, default=0, help="head motion style 0..45 (default: %(default)s)")
    st.add_argument("--expression-scale", type=float, default=1.0, help="exaggerate (>1) or damp (<1) expressions")
    st.add_argument("--ref-eyeblink", type=Path, help="reference video (or its coeff_3dmm .mat) driving eyes and expression")
    st.add_argument("--ref-pose", type=Path, help="reference video (or its coeff_3dmm .mat) whose head motion is added")
    st.add_argument("--yaw", type=float, nargs="+", help="free-view yaw keyframes in degrees")
    st.add_argument("--pitch", type=float, nargs="+", help="free-view pitch keyframes in degrees")
    st.add_argument("--roll", type=float, nargs="+", help="free-view roll keyframes in degrees")
    st.add_argument("--batch-size", type=int, default=1, help="frames rendered together (default: %(default)s)")
    st.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="where the networks run")
    st.add_argument("--landmarks", type=Path, help="JSON or .txt of 68 or 5 (x, y) face points, for faces detectors miss")
    st.add_argument("--enhancer", choices=("gfpgan",), help="restore faces with GFPGAN (needs the gfpgan package and weights)")
    remote = parser.add_argument_group("remote rendering (a `talkbridge serve` on a GPU box)")
    remote.add_argument("--sidecar", metavar="ADDRESS", help="run the engine on this sidecar (e.g. tcp://gpu-box:5555); outputs are written here")
    remote.add_argument("--server-key", type=Path, help="the sidecar's CURVE public key (.key), for non-loopback addresses")
    remote.add_argument("--client-key", type=Path, help="this client's CURVE key pair (.key_secret)")
    remote.add_argument("--signing-key", type=Path, help="shared HMAC key file, when the sidecar has one")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    options = GenerateOptions(
        engine=args.engine,
        transcript=args.transcript,
        seed=args.seed,
        still=args.still,
        pose_intensity=args.pose_intensity,
        overwrite=args.overwrite,
        name=args.name,
        size=args.size,
        progress=not getattr(args, "quiet", False),
        checkpoints=args.checkpoints,
        device=args.device,
        enhancer=args.enhancer,
        sadtalker=_sadtalker_options(args),
        sidecar=_sidecar_target(args),
    )
    result = generate(args.image, args.audio, args.output_dir, options)
    print(f"video:   {result.video}")
    print(f"motion:  {result.motion}")
    print(f"summary: {result.summary}")
    if result.coefficients is not None:
        print(f"coeffs:  {result.coefficients}")
    return 0


def _sidecar_target(args: argparse.Namespace) -> "SidecarTarget | None":
    from talkbridge.cli.sidecar_target import SidecarTarget

    keys = (args.server_key, args.client_key, args.signing_key)
    if args.sidecar is None:
        if any(key is not None for key in keys):
            raise InputError("--server-key, --client-key and --signing-key only apply with --sidecar ADDRESS")
        return None
    return SidecarTarget(args.sidecar, *keys)


def _sadtalker_options(args: argparse.Namespace):
    from talkbridge.pipeline.sadtalker_video import SadTalkerOptions

    return SadTalkerOptions(
        preprocess=args.preprocess, still=args.still, pose_style=args.pose_style,
        expression_scale=args.expression_scale, ref_eyeblink=args.ref_eyeblink, ref_pose=args.ref_pose,
        yaw=args.yaw, pitch=args.pitch, roll=args.roll, batch_size=args.batch_size, seed=args.seed,
        landmarks=args.landmarks,
    )


def sadtalker_checkpoints(folder: Path | None) -> Path | None:
    """The checkpoint folder SadTalker would use, or None when its weights are not there."""
    from talkbridge.core.errors import CheckpointError
    from talkbridge.core.sadtalker.audio_models import AudioCheckpoints
    from talkbridge.core.weights import WeightStore

    folder = Path(folder) if folder is not None else WeightStore().checkpoint_dir
    try:
        AudioCheckpoints.find(folder)
    except CheckpointError:
        return None
    return folder


def choose_engine(requested: str, checkpoints: Path | None = None) -> str:
    """The engine that will run, logged with the reason."""
    if requested == "lite":
        log.info("engine: lite")
        return "lite"
    found = sadtalker_checkpoints(checkpoints)
    if requested == "sadtalker":
        if found is None:
            where = checkpoints or "the model store"
            raise InputError(
                f"no SadTalker checkpoints in {where}; run `talkbridge models download` or pass --checkpoints DIR"
            )
        log.info("engine: sadtalker (checkpoints in %s)", found)
        return "sadtalker"
    if found is not None:
        log.info("engine: sadtalker (auto: checkpoints found in %s)", found)
        return "sadtalker"
    log.info("engine: lite (auto: no SadTalker checkpoints found; `talkbridge models download` fetches them)")
    return "lite"




def _read_transcript(path: Path | None) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise InputError("transcript file not found", path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"transcript is not UTF-8 text ({error})", path) from error
    if not text.strip():
        raise InputError("transcript file is empty", path)
    return text


def output_paths(output_dir: Path, name: str) -> tuple[Path, Path, Path]:
    return output_dir / f"{name}.mp4", output_dir / f"{name}.motion.npz", output_dir / f"{name}.motion.json"


def generate(image: Path, audio: Path, output_dir: Path, options: GenerateOptions = GenerateOptions()) -> GenerateResult:
    """Run the whole job; every output appears complete or not at all."""
    from talkbridge.core.audio import load_audio
    from talkbridge.exporters.atomic import check_writable_target

    image, audio, output_dir = Path(image), Path(audio), Path(output_dir)
    if not 0.0 <= options.pose_intensity <= 2.0:
        raise InputError(f"--pose-intensity must be between 0 and 2, got {options.pose_intensity}")
    remote = options.sidecar is not None
    # With a sidecar the server's capabilities pick the engine, after the local checks below.
    engine_name = options.engine if remote else choose_engine(options.engine, options.checkpoints)
    size = options.size or (512 if engine_name == "lite" else 256)
    if engine_name != "lite" and size not in (256, 512):
        raise InputError(f"--size must be 256 or 512 with the SadTalker engine, got {size}")
    if size < 64 or size % 2:
        raise InputError(f"--size must be an even number of pixels, at least 64; got {size}")
    from talkbridge.core.face.image_io import read_image_rgb

    portrait = read_image_rgb(image)  # read once: checked here, drawn by SadTalker
    image_size = (int(portrait.shape[1]), int(portrait.shape[0]))
    transcript = _read_transcript(options.transcript)
    samples = load_audio(audio, allow_silence=engine_name == "lite" or (remote and engine_name == "auto"))
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError("output path exists and is not a folder", output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    name = options.name or audio.stem
    video_path, motion_path, summary_path = output_paths(output_dir, name)
    mat_path = output_dir / f"{name}.mat"
    targets = [video_path, motion_path, summary_path] + ([mat_path] if engine_name != "lite" else [])
    for path in targets:
        check_writable_target(path, options.overwrite)  # fail before minutes of work, not after
    common = {"audio": str(audio), "image": str(image), "image_size": list(image_size), "video": video_path.name}
    if remote:
        from talkbridge.cli.remote_generate import generate_remote
        from talkbridge.core.audio import SAMPLE_RATE
        from talkbridge.core.motion import FPS

        if options.device not in (None, "auto"):
            log.warning("--device %s is ignored with --sidecar: the sidecar picks its own device", options.device)
        n_frames = int(round(samples.size / SAMPLE_RATE * FPS))
        paths = (video_path, motion_path, summary_path, mat_path)
        return generate_remote(options.sidecar, image, audio, n_frames, image_size, options, paths, common, transcript)
    if engine_name == "sadtalker":
        return _generate_sadtalker(image, portrait, audio, samples, size, options, video_path, motion_path, summary_path, mat_path, common)
    return _generate_lite(image, audio, samples, size, transcript, options, video_path, motion_path, summary_path, common)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="generate", disable=not enabled, leave=False)


def _write_motion_files(motion, motion_path: Path, summary_path: Path, overwrite: bool) -> None:
    from talkbridge.exporters.atomic import atomic_output
    from talkbridge.exporters.motion_file import motion_summary, save_motion

    save_motion(motion, motion_path, overwrite=overwrite)
    with atomic_output(summary_path, overwrite=overwrite) as temp:
        temp.write_text(json.dumps(motion_summary(motion), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _generate_lite(image, audio, samples, size, transcript, options, video_path, motion_path, summary_path, common) -> GenerateResult:
    from talkbridge.core.engine import MotionRequest, create_engine
    from talkbridge.core.lite.articulation import frame_count
    from talkbridge.core.lite.mannequin import build_mannequin
    from talkbridge.core.lite.preview import PreviewRenderer
    from talkbridge.core.motion import FPS, Motion
    from talkbridge.exporters.video import VideoWriter

    engine = create_engine("lite")
    request = MotionRequest(
        audio=samples,
        image=image,
        seed=options.seed,
        still=options.still,
        pose_intensity=options.pose_intensity,
        transcript=transcript,
    )
    renderer = PreviewRenderer(build_mannequin(), size=size)
    chunks = []
    with VideoWriter(video_path, FPS, (size, size), audio, options.overwrite) as video, _progress(
        frame_count(samples.size), options.progress
    ) as bar:
        for chunk in engine.stream_motion(request):
            for start in range(0, chunk.n_frames, FPS):  # render in 1 s pieces to keep memory flat
                piece = _slice(chunk, start, min(chunk.n_frames, start + FPS))
                video.write(renderer.render(piece))
                bar.update(piece.n_frames)
            chunks.append(chunk)

    details = dict(getattr(getattr(engine, "last_plan", None), "details", {}) or {})
    metadata = {
        **details,
        **common,
        "image_used": False,
        "transcript": None if options.transcript is None else str(options.transcript),
    }
    motion = Motion.from_chunks(chunks, engine=engine.name, engine_version=engine.version, fps=FPS, metadata=metadata)
    _write_motion_files(motion, motion_path, summary_path, options.overwrite)
    log.info("wrote %s, %s and %s (%d frames)", video_path, motion_path, summary_path, motion.n_frames)
    return GenerateResult("lite", video_path, motion_path, summary_path, motion.n_frames, details)


def _generate_sadtalker(image, portrait, audio, samples, size, options, video_path, motion_path, summary_path, mat_path, common) -> GenerateResult:
    from dataclasses import asdict

    from talkbridge.core.motion import FPS, Motion
    from talkbridge.core.sadtalker.engine import SadTalkerMotionEngine
    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from talkbridge.exporters.video import VideoWriter
    from talkbridge.core.sadtalker.audio2coeff import check_pose_style
    from talkbridge.pipeline.sadtalker_video import SadTalkerOptions, SadTalkerVideo

    st = options.sadtalker or SadTalkerOptions(still=options.still, seed=options.seed)
    check_pose_style(st.pose_style)  # before seconds of model loading
    enhance = None
    if options.enhancer == "gfpgan":
        from talkbridge.pipeline.enhance import GfpganEnhancer

        enhance = GfpganEnhancer()
    pipeline = SadTalkerVideo(sadtalker_checkpoints(options.checkpoints), size, st.preprocess, options.device)
    run = pipeline.start(image, samples, st, image_rgb=portrait)
    with VideoWriter(video_path, FPS, run.frame_size, audio, options.overwrite) as video, _progress(
        run.n_frames, options.progress
    ) as bar:
        for frames in run.frames():
            video.write(enhance(frames) if enhance else frames)
            bar.update(len(frames))

    crop = run.first.crop
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(st).items() if not isinstance(v, np.ndarray)}
    metadata = {
        **common,
        "image_used": True,
        "size": size,
        "options": settings,
        "crop": {"mode": crop.mode, "box": list(crop.box), "image_size": list(crop.image_size)},
        "expression_scale_applied": st.expression_scale,
        "enhancer": options.enhancer,
    }
    official = Motion.from_chunks(run.motion_chunks, engine="sadtalker", engine_version=SadTalkerMotionEngine.version)
    write_coeff_mat(mat_path, official.coefficients(), overwrite=options.overwrite)
    motion = Motion.from_chunks(
        run.motion_chunks, engine="sadtalker", engine_version=SadTalkerMotionEngine.version, fps=FPS,
        first_frame=run.first.row, metadata=metadata,
    )
    if st.expression_scale != 1:
        motion.expression = motion.expression * np.float32(st.expression_scale)  # what the video shows
    _write_motion_files(motion, motion_path, summary_path, options.overwrite)
    log.info("wrote %s, %s, %s and %s (%d frames)", video_path, motion_path, summary_path, mat_path, motion.n_frames)
    return GenerateResult("sadtalker", video_path, motion_path, summary_path, motion.n_frames, metadata, mat_path)


def _slice(chunk, start: int, stop: int):
    from talkbridge.core.motion import MotionChunk

    def part(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[start:stop]

    return MotionChunk(
        start=chunk.start + start,
        pose=chunk.pose[start:stop],
        blink=chunk.blink[start:stop],
        expression=part(chunk.expression),
        arkit=part(chunk.arkit),
        visemes=part(chunk.visemes),
    )

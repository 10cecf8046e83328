"""`talkbridge generate IMAGE AUDIO -o OUTDIR`: the main job, a talking-head video plus its motion files.

    talkbridge generate portrait.png speech.wav -o out/
    talkbridge generate portrait.png speech.wav -o out/ --transcript speech.txt --seed 3 --still

Writes ``OUTDIR/<name>.mp4`` (the animated head with the speech muxed in), ``OUTDIR/<name>.motion.npz``
and ``OUTDIR/<name>.motion.json``, each atomically and never over an existing file unless
``--overwrite``. With the lite engine (the default until SadTalker's image pipeline lands) the video
shows the built-in mannequin head; the portrait is checked and recorded but not drawn.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError

log = logging.getLogger(__name__)

ENGINES = ("auto", "sadtalker", "lite")
SADTALKER_UNAVAILABLE = (
    "the SadTalker end-to-end video path (portrait cropping and face rendering) is not available yet; "
    "use --engine lite (or auto), or `talkbridge motion` for SadTalker motion only"
)


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
    size: int = 512
    progress: bool = True


@dataclass
class GenerateResult:
    engine: str
    video: Path
    motion: Path
    summary: Path
    frames: int
    details: dict = field(default_factory=dict)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="make a talking-head video and its motion files from a portrait and speech",
        description="Turn a portrait and speech into OUTDIR/<name>.mp4 plus <name>.motion.npz and "
        "<name>.motion.json. With the lite engine (used until SadTalker's image pipeline is ready) the "
        "video shows the built-in mannequin head, not the portrait.",
    )
    parser.add_argument("image", type=Path, help="portrait image (checked and recorded; the lite video shows the mannequin)")
    parser.add_argument("audio", type=Path, help="speech audio (wav, flac, mp3, ogg, ...)")
    parser.add_argument("-o", "--output-dir", type=Path, required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="auto: SadTalker when it can run end to end, else lite (default: %(default)s)")
    parser.add_argument("--transcript", type=Path, help="text file with the spoken words: aligned for better lip timing")
    parser.add_argument("--seed", type=int, default=0, help="seed for blinks and head motion (default: %(default)s)")
    parser.add_argument("--still", action="store_true", help="keep the head still (no procedural head motion)")
    parser.add_argument("--pose-intensity", type=float, default=1.0,
                        help="scale of head motion, 0 to 2 (default: %(default)s)")
    parser.add_argument("--name", help="output base name (default: the audio file's name)")
    parser.add_argument("--size", type=int, default=512, help="video width and height in pixels (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
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
    )
    result = generate(args.image, args.audio, args.output_dir, options)
    print(f"video:   {result.video}")
    print(f"motion:  {result.motion}")
    print(f"summary: {result.summary}")
    return 0


def choose_engine(requested: str) -> str:
    """The engine that will run, logged with the reason."""
    if requested == "sadtalker":
        raise InputError(SADTALKER_UNAVAILABLE)
    if requested == "auto":
        log.info("engine: lite (auto; the SadTalker end-to-end video path is not available yet)")
    else:
        log.info("engine: lite")
    return "lite"


def _check_image(path: Path) -> tuple[int, int]:
    import cv2

    if not path.is_file():
        raise InputError("portrait image not found", path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("cannot read the portrait as an image (use PNG or JPEG)", path)
    return int(image.shape[1]), int(image.shape[0])


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
    from tqdm import tqdm

    from talkbridge.core.audio import load_audio
    from talkbridge.core.engine import MotionRequest, create_engine
    from talkbridge.core.lite.articulation import frame_count
    from talkbridge.core.lite.mannequin import build_mannequin
    from talkbridge.core.lite.preview import PreviewRenderer
    from talkbridge.core.motion import FPS, Motion
    from talkbridge.exporters.atomic import atomic_output, check_writable_target
    from talkbridge.exporters.motion_file import motion_summary, save_motion
    from talkbridge.exporters.video import VideoWriter

    image, audio, output_dir = Path(image), Path(audio), Path(output_dir)
    if not 0.0 <= options.pose_intensity <= 2.0:
        raise InputError(f"--pose-intensity must be between 0 and 2, got {options.pose_intensity}")
    if options.size < 64 or options.size % 2:
        raise InputError(f"--size must be an even number of pixels, at least 64; got {options.size}")
    engine_name = choose_engine(options.engine)
    image_size = _check_image(image)
    transcript = _read_transcript(options.transcript)
    samples = load_audio(audio, allow_silence=True)
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError("output path exists and is not a folder", output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    name = options.name or audio.stem
    video_path, motion_path, summary_path = output_paths(output_dir, name)
    for path in (video_path, motion_path, summary_path):
        check_writable_target(path, options.overwrite)  # fail before minutes of work, not after

    engine = create_engine(engine_name)
    request = MotionRequest(
        audio=samples,
        image=image,
        seed=options.seed,
        still=options.still,
        pose_intensity=options.pose_intensity,
        transcript=transcript,
    )
    renderer = PreviewRenderer(build_mannequin(), size=options.size)
    total = frame_count(samples.size)
    chunks = []
    with VideoWriter(video_path, FPS, (options.size, options.size), audio, options.overwrite) as video, tqdm(
        total=total, unit="frame", desc="generate", disable=not options.progress, leave=False
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
        "audio": str(audio),
        "image": str(image),
        "image_size": list(image_size),
        "image_used": False,
        "transcript": None if options.transcript is None else str(options.transcript),
        "video": video_path.name,
    }
    motion = Motion.from_chunks(chunks, engine=engine.name, engine_version=engine.version, fps=FPS, metadata=metadata)
    save_motion(motion, motion_path, overwrite=options.overwrite)
    with atomic_output(summary_path, overwrite=options.overwrite) as temp:
        temp.write_text(json.dumps(motion_summary(motion), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info("wrote %s, %s and %s (%d frames)", video_path, motion_path, summary_path, motion.n_frames)
    return GenerateResult(engine_name, video_path, motion_path, summary_path, motion.n_frames, details)


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

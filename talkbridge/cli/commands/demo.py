"""`talkbridge demo [-o OUTDIR]`: the main job on sample inputs the project makes itself.

Synthesises a sentence with espeak-ng, draws a placeholder portrait, runs `generate` with the lite
engine (no downloaded weights needed) and prints where the video and motion files are. It is what
`./scripts/dev demo`, the README's first command, runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path("out/demo")
DEMO_NAME = "demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate sample speech and run the lite engine on it (no weights needed)",
        description="Make sample inputs (espeak-ng speech, a placeholder portrait), run `generate` with the "
        "weight-free lite engine and print where the outputs are. Earlier demo outputs are kept: a new "
        "run picks the next free name unless --overwrite.",
    )
    parser.add_argument("-o", "--output-dir", type=Path, default=DEFAULT_OUTPUT, help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for blinks and head motion (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the previous demo outputs instead of keeping them")
    parser.set_defaults(func=handle)


def free_name(output_dir: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever has no outputs yet in ``output_dir``."""
    from talkbridge.exporters.job_files import OutputPlan

    candidate, number = base, 1
    while any(path.exists() for path in OutputPlan(output_dir, candidate).targets("lite").values()):
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def handle(args: argparse.Namespace) -> int:
    from talkbridge.api import run_job
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.core.lite.samples import DEMO_TEXT, synthesize_speech, write_portrait
    from talkbridge.exporters.atomic import atomic_output
    from talkbridge.exporters.job_files import OutputPlan

    output_dir: Path = args.output_dir
    inputs = output_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    speech, portrait, transcript = inputs / "speech.wav", inputs / "portrait.png", inputs / "speech.txt"
    # The inputs are regenerated every run (same text, same voice): replacing them loses nothing.
    with atomic_output(speech, overwrite=True) as temp:
        synthesize_speech(DEMO_TEXT, temp)
    with atomic_output(portrait, overwrite=True) as temp:
        write_portrait(temp)
    with atomic_output(transcript, overwrite=True) as temp:
        temp.write_text(DEMO_TEXT + "\n", encoding="utf-8")
    log.info("sample inputs in %s (speech by espeak-ng)", inputs)

    name = DEMO_NAME if args.overwrite else free_name(output_dir, DEMO_NAME)
    options = JobOptions.from_mapping({"engine": "lite", "seed": args.seed, "transcript": DEMO_TEXT + "\n"})
    request = JobRequest(audio=speech, image=portrait, options=options, transcript_file=transcript)
    plan = OutputPlan(output_dir, name, overwrite=args.overwrite)
    result = run_job(request, plan, progress=not getattr(args, "quiet", False))
    print("talkbridge demo (lite engine, built-in mannequin head):")
    print(f"  video:   {result.video}")
    print(f"  motion:  {result.motion}")
    print(f"  summary: {result.summary}")
    print(f"  inputs:  {speech}, {transcript}")
    return 0

"""Command-line flags for job options, made from the job layer's one definition of each option.

``generate`` (and any command that starts jobs) adds the flags here, so names, help and choices
come from :data:`talkbridge.core.jobs.options.OPTIONS` and values are checked by the same code the
sidecar and batch manifests use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from talkbridge.core.jobs.options import OPTIONS, JobOptions, OptionSpec

FILE_BACKED = {"transcript": "FILE", "landmarks": "FILE"}
"""Options whose command-line value is a file: the transcript's text, the landmark points."""

_TYPES = {"int": int, "float": float, "name": str}


def _default_text(spec: OptionSpec) -> str:
    return "" if spec.default is None or spec.kind == "bool" else f" (default: {spec.default})"


def add_job_options(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Add a flag per option; unset flags stay absent, so only given values are checked and used."""
    for name in names or tuple(OPTIONS):
        spec = OPTIONS[name]
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": name, "help": spec.help + _default_text(spec)}
        if name in FILE_BACKED:
            kwargs.update(type=Path, metavar=FILE_BACKED[name])
        elif spec.kind == "bool":
            kwargs.update(action="store_true")
        elif spec.kind in ("choice", "device", "engine"):
            if spec.choices:
                kwargs["choices"] = spec.choices
        elif spec.kind == "angles":
            kwargs.update(type=float, nargs="+", metavar="DEGREES")
        elif spec.kind == "emotion":
            kwargs.update(type=str, metavar="NAME=WEIGHT[,...]")
        else:
            kwargs["type"] = _TYPES[spec.kind]
        parser.add_argument(spec.flag, **kwargs)
        if name == "emotion":
            parser.add_argument(
                "--emotion-track", type=Path, metavar="FILE", default=argparse.SUPPRESS, dest="emotion_track",
                help="time-stamped emotion keys (CSV with a 'time' column, or JSON), interpolated per frame",
            )


def job_options_from_args(args: argparse.Namespace, **fixed: Any) -> tuple[JobOptions, dict[str, Path]]:
    """The checked options the flags gave, and the files behind file-backed options (by option name)."""
    from talkbridge.core.emotion import load_emotion_track
    from talkbridge.core.errors import InputError
    from talkbridge.core.face.landmarks import load_landmark_file
    from talkbridge.core.jobs.request import read_transcript

    values: dict[str, Any] = {name: getattr(args, name) for name in OPTIONS if hasattr(args, name)}
    files: dict[str, Path] = {}
    if values.get("transcript") is not None:
        files["transcript"] = values["transcript"]
        values["transcript"] = read_transcript(values["transcript"])
    if values.get("landmarks") is not None:
        files["landmarks"] = values["landmarks"]
        values["landmarks"] = load_landmark_file(values["landmarks"])
    track = getattr(args, "emotion_track", None)
    if track is not None:
        if values.get("emotion") is not None:
            raise InputError("give either --emotion or --emotion-track, not both")
        files["emotion_track"] = track
        values["emotion"] = load_emotion_track(track)
    values.update(fixed)
    return JobOptions.from_mapping(values), files

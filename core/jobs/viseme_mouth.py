"""Mouth shapes for motion that has none of its own: the viseme (lite) engine run on the job's audio.

SadTalker's motion is 3DMM expression with no blend-shape weights. Without the Basel model for the
geometric retarget, its ARKit curves take mouth, jaw and cheek shapes from the viseme engine. Running
that engine is a job step like any other, so it lives here, in the job layer, and the exporters only
combine motions they are handed (see ``exporters/retarget.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkbridge.core.engine import MotionRequest, engine_facts
from talkbridge.core.jobs.cache import EngineCache
from talkbridge.core.motion import Motion


def needs_viseme_motion(engine: str, arkit_exports: bool) -> bool:
    """Whether exports that need ARKit curves (``arkit_exports``) must get mouth shapes from the viseme
    engine, because ``engine``'s own motion has no ARKit curves."""
    return arkit_exports and not engine_facts(engine).arkit


def viseme_motion_for(audio: Path | np.ndarray, cache: EngineCache | None = None) -> Motion:
    """The viseme engine's whole-clip motion for ``audio`` (a path, or 16 kHz mono float32 samples)."""
    engine = (cache or EngineCache()).lite()
    chunks = list(engine.stream_motion(MotionRequest(audio=audio)))
    return Motion.from_chunks(chunks, engine=engine.name, engine_version=engine.version)

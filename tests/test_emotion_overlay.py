"""The FACS emotion overlay on lite and SadTalker ARKit curves."""

from __future__ import annotations

import numpy as np
import pytest

from talkbridge.core.emotion import parse_emotion_text
from talkbridge.core.emotion_overlay import (
    ACTION_UNITS, ARTICULATION, EMOTION_UNITS, OVERLAY_NAME, apply_emotion_overlay, emotion_targets,
)
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.emotion import with_emotion_channel
from talkbridge.core.jobs.steps import JobInfo, JobStream, Step
from talkbridge.core.motion import ARKIT_52, EMOTIONS, Motion, MotionChunk
from tests.speech import speech_like, write_wav

COLUMN = {name: i for i, name in enumerate(ARKIT_52)}


def one(name: str, weight: float = 1.0, frames: int = 1) -> np.ndarray:
    emotion = np.zeros((frames, len(EMOTIONS)), np.float32)
    emotion[:, EMOTIONS.index(name)] = weight
    return emotion


def test_tables_name_real_shapes_and_every_emotion():
    assert set(EMOTION_UNITS) == set(EMOTIONS)
    assert all(unit in ACTION_UNITS for units in EMOTION_UNITS.values() for unit in units)
    assert all(shape in ARKIT_52 for shapes in ACTION_UNITS.values() for shape in shapes)


def test_no_emotion_leaves_the_curves_exactly_as_they_were():
    arkit = np.random.default_rng(0).uniform(0, 1, (20, 52)).astype(np.float32)
    assert np.array_equal(apply_emotion_overlay(arkit, np.zeros((20, 10))), arkit)


@pytest.mark.parametrize("emotion, raised, untouched", [
    ("joy", ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft"), ("browDownLeft", "mouthFrownLeft")),
    ("sadness", ("browInnerUp", "mouthFrownLeft", "browDownRight"), ("mouthSmileLeft", "eyeWideLeft")),
    ("amazement", ("browInnerUp", "browOuterUpLeft", "eyeWideRight"), ("browDownLeft",)),
    ("anger", ("browDownLeft", "eyeSquintRight", "mouthPressLeft"), ("mouthSmileLeft",)),
    ("disgust", ("noseSneerLeft", "mouthUpperUpRight"), ("mouthSmileRight",)),
])
def test_each_emotion_raises_its_action_units_shapes(emotion, raised, untouched):
    target = emotion_targets(one(emotion))[0]
    assert all(target[COLUMN[name]] > 0.3 for name in raised)
    assert all(target[COLUMN[name]] == 0 for name in untouched)


def test_lip_sync_keeps_its_shape():
    rng = np.random.default_rng(1)
    arkit = rng.uniform(0, 1, (30, 52)).astype(np.float32)
    emotion = np.tile(rng.uniform(0, 1, (1, 10)), (30, 1))
    out = apply_emotion_overlay(arkit, emotion)
    articulation = [COLUMN[name] for name in ARTICULATION]
    assert np.array_equal(out[:, articulation], arkit[:, articulation])
    assert np.all(out >= arkit - 1e-6) and np.all(out <= 1.0)
    quiet, open_mouth = np.zeros((1, 52), np.float32), np.zeros((1, 52), np.float32)
    open_mouth[0, COLUMN["jawOpen"]] = 1.0
    smile = COLUMN["mouthSmileLeft"]
    joy = one("joy")
    assert apply_emotion_overlay(open_mouth, joy)[0, smile] < apply_emotion_overlay(quiet, joy)[0, smile]
    brow = COLUMN["browInnerUp"]  # the upper face does not yield to speech
    sad = one("sadness")
    assert apply_emotion_overlay(open_mouth, sad)[0, brow] == pytest.approx(apply_emotion_overlay(quiet, sad)[0, brow])


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("overlay") / "speech.wav", speech_like(1.2, seed=3))


def _lite(speech, emotion=None):
    from talkbridge.core.jobs.local import open_local_job
    from talkbridge.core.jobs.options import JobOptions
    from talkbridge.core.jobs.request import JobRequest

    options = JobOptions(engine="lite", seed=2, emotion=emotion).checked()
    stream = open_local_job(JobRequest(audio=speech, options=options), render=False)
    chunks = [step.chunk for step in stream.steps]
    return stream.info, Motion.from_chunks(chunks, engine="lite", engine_version="1")


def test_a_lite_job_blends_the_emotion_into_its_curves_and_carries_the_channel(speech):
    _, plain = _lite(speech)
    info, happy = _lite(speech, "joy=0.8")
    assert plain.emotion is None and happy.emotion.shape == (happy.n_frames, 10)
    assert np.allclose(happy.emotion[:, EMOTIONS.index("joy")], 0.8)
    assert info.metadata["emotion_overlay"] == OVERLAY_NAME
    smile = COLUMN["mouthSmileLeft"]
    assert np.all(happy.arkit[:, smile] >= plain.arkit[:, smile]) and happy.arkit[:, smile].mean() > plain.arkit[:, smile].mean() + 0.2
    articulation = [COLUMN[name] for name in ARTICULATION]
    assert np.array_equal(happy.arkit[:, articulation], plain.arkit[:, articulation])


def test_emotion_auto_is_for_audio2face_only(speech):
    with pytest.raises(InputError, match=r"licence allows it only together with Audio2Face \(--engine audio2face\)"):
        _lite(speech, "auto")


def test_sadtalker_curves_get_the_overlay_in_the_retarget_and_its_frames_stay(speech):
    from talkbridge.core.jobs.viseme_mouth import viseme_motion_for
    from talkbridge.exporters.retarget import retarget_motion

    mouth = viseme_motion_for(speech)
    n = mouth.n_frames
    rows = np.random.default_rng(4).normal(0, 0.1, (n, 64)).astype(np.float32)
    chunk = MotionChunk(0, pose=np.zeros((n, 6), np.float32), blink=np.zeros(n, np.float32), expression=rows)
    frames = np.zeros((n, 2, 2, 3), np.uint8)
    stream = with_emotion_channel(JobStream(JobInfo("sadtalker", "x", n), iter([Step(chunk, frames)])), parse_emotion_text("sadness=1").frames(n, 25))
    step = next(stream.steps)
    assert step.frames is frames and np.array_equal(step.chunk.expression, rows)  # what the video is made from
    sad = Motion.from_chunks([step.chunk], engine="sadtalker", engine_version="x")
    plain = Motion.from_chunks([chunk], engine="sadtalker", engine_version="x")
    sad_curves, plain_curves = retarget_motion(sad, mouth_motion=mouth), retarget_motion(plain, mouth_motion=mouth)
    assert sad_curves.metadata["emotion_overlay"] == OVERLAY_NAME and "emotion_overlay" not in plain_curves.metadata
    frown = COLUMN["mouthFrownLeft"]
    assert sad_curves.arkit[:, COLUMN["browInnerUp"]].min() > 0.5 and plain_curves.arkit[:, COLUMN["browInnerUp"]].max() == 0
    assert np.all(sad_curves.arkit[:, frown] >= plain_curves.arkit[:, frown])
    jaw = COLUMN["jawOpen"]
    assert np.array_equal(sad_curves.arkit[:, jaw], plain_curves.arkit[:, jaw])


def test_a_sadtalker_job_carries_the_emotion_and_keeps_its_coefficients(tmp_path):
    """Motion-only SadTalker (tiny seeded weights): the emotion is a channel; the 3DMM rows are unchanged."""
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.local import open_local_job
    from talkbridge.core.jobs.options import JobOptions
    from talkbridge.core.jobs.request import JobRequest
    from tests.sadtalker_weights import write_combined_safetensors

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    write_combined_safetensors(checkpoints, seed=5)
    first = np.random.default_rng(1).normal(0, 0.2, 73).astype(np.float32)
    audio = write_wav(tmp_path / "speech.wav", speech_like(1.0, seed=9))
    cache = EngineCache(checkpoints)

    def motion(emotion):
        options = JobOptions(engine="sadtalker", seed=2, device="cpu", emotion=emotion).checked()
        stream = open_local_job(JobRequest(audio=audio, first_frame=first, options=options), cache, render=False)
        chunks = [step.chunk for step in stream.steps]
        return stream.info, Motion.from_chunks(chunks, engine="sadtalker", engine_version="x")

    plain_info, plain = motion(None)
    info, sad = motion("sadness=0.9")
    assert plain.emotion is None and "emotion_overlay" not in plain_info.metadata
    assert sad.emotion.shape == (sad.n_frames, 10) and np.allclose(sad.emotion[:, EMOTIONS.index("sadness")], 0.9)
    assert info.metadata["emotion_overlay"] == "exported curves only (the video is unchanged)"
    assert np.array_equal(sad.coefficients(), plain.coefficients())  # what the video is rendered from

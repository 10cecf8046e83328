"""Behaviour of the streaming audio-to-coefficient pipeline and the SadTalker motion engine."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from talkbridge.core.engine import MotionRequest, create_engine
from talkbridge.core.errors import InputError
from talkbridge.core.motion import Motion
from talkbridge.core.sadtalker.audio2coeff import Audio2Coeff, CoeffRequest, pose_chunk_count
from tests.sadtalker_weights import seeded_audio_models, write_combined_safetensors
from tests.speech import speech_like, write_wav

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def pipeline() -> Audio2Coeff:
    return Audio2Coeff(*seeded_audio_models(7))


@pytest.fixture(scope="module")
def first_frame() -> np.ndarray:
    row = np.random.default_rng(0).normal(0, 0.3, 73).astype(np.float32)
    row[64:67] = [0.05, -0.1, 0.02]
    return row


@pytest.fixture(scope="module")
def speech_4s(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_like(4.0, seed=1))


def _whole(pipeline, request, chunk_frames=1000) -> np.ndarray:
    return np.concatenate([c.coefficients() for c in pipeline.stream(request, chunk_frames)])


def test_output_shape_and_frame_count(pipeline, first_frame, speech_4s):
    coeff = pipeline.generate(CoeffRequest(speech_4s, first_frame))
    assert coeff.shape == (100, 70) and coeff.dtype == np.float32
    assert np.all(np.isfinite(coeff))


@pytest.mark.parametrize("chunk_frames", [1, 7, 32, 45])
def test_any_chunking_equals_the_whole(pipeline, first_frame, speech_4s, chunk_frames):
    request = CoeffRequest(speech_4s, first_frame, pose_style=5, seed=3)
    whole = _whole(pipeline, request)
    chunks = list(pipeline.stream(request, chunk_frames))
    assert [c.start for c in chunks] == list(range(0, 100, chunk_frames))
    assert np.allclose(np.concatenate([c.coefficients() for c in chunks]), whole, atol=2e-6)


def test_first_chunk_needs_only_the_pose_chunks_it_covers(pipeline, first_frame, tmp_path):
    path = write_wav(tmp_path / "long.wav", speech_like(40.0, seed=2))
    job = pipeline.prepare(CoeffRequest(path, first_frame))
    first = next(job.chunks(50))
    assert first.n_frames == 50
    assert job.pose.decoded_chunks <= 2  # frames 0..55 at most, of 31 chunks in the clip
    assert pose_chunk_count(job.n_frames) == 32


def test_seed_reproduces_and_varies(pipeline, first_frame, speech_4s):
    a = _whole(pipeline, CoeffRequest(speech_4s, first_frame, seed=11))
    b = _whole(pipeline, CoeffRequest(speech_4s, first_frame, seed=11))
    c = _whole(pipeline, CoeffRequest(speech_4s, first_frame, seed=12))
    assert np.array_equal(a, b)
    assert not np.allclose(a[:, 64:], c[:, 64:])


def test_injected_latents_and_blinks_are_used(pipeline, first_frame, speech_4s):
    chunks = pose_chunk_count(100)
    latents = np.zeros((chunks, 64), np.float32)
    blink = np.zeros(100, np.float32)
    blink[40:45] = [0.5, 0.9, 1.0, 0.9, 0.5]
    job = pipeline.prepare(CoeffRequest(speech_4s, first_frame, latents=latents, blink=blink))
    motion = list(job.chunks(100))[0]
    assert np.array_equal(motion.blink, blink)
    with pytest.raises(InputError, match="latents"):
        pipeline.prepare(CoeffRequest(speech_4s, first_frame, latents=latents[:1]))


def test_blink_changes_only_blink_frames_expression(pipeline, first_frame, speech_4s):
    blink = np.zeros(100, np.float32)
    open_eyes = _whole(pipeline, CoeffRequest(speech_4s, first_frame, blink=blink))
    blink[50] = 1.0
    closed = _whole(pipeline, CoeffRequest(speech_4s, first_frame, blink=blink))
    changed = np.flatnonzero(np.any(open_eyes[:, :64] != closed[:, :64], axis=1))
    assert changed.tolist() == [50]


def test_pose_starts_at_the_first_frame_and_still_holds_it(pipeline, first_frame, speech_4s):
    moving = _whole(pipeline, CoeffRequest(speech_4s, first_frame, seed=1))
    assert np.abs(moving[0, 64:] - first_frame[64:70]).max() < 0.5  # smoothing moves frame 0 a little
    assert np.ptp(moving[:, 64:], axis=0).max() > 1e-3
    still = _whole(pipeline, CoeffRequest(speech_4s, first_frame, seed=1, still=True))
    assert np.array_equal(still[:, 64:], np.repeat(first_frame[None, 64:70], 100, 0))
    assert np.array_equal(still[:, :64], moving[:, :64])


def test_reference_videos(pipeline, first_frame, speech_4s, tmp_path):
    rng = np.random.default_rng(5)
    eyeblink = rng.normal(0, 0.2, (30, 73)).astype(np.float32)
    pose_video = rng.normal(0, 0.05, (40, 73)).astype(np.float32)
    blink_mat, pose_mat = tmp_path / "blink.mat", tmp_path / "pose.mat"
    scipy.io.savemat(blink_mat, {"coeff_3dmm": eyeblink})
    scipy.io.savemat(pose_mat, {"coeff_3dmm": pose_video})
    base = CoeffRequest(speech_4s, first_frame, seed=2)
    plain = pipeline.prepare(base)
    job = pipeline.prepare(CoeffRequest(speech_4s, first_frame, seed=2, ref_eyeblink=blink_mat, ref_pose=pose_mat))
    assert not job.blink.any()  # a reference blink video replaces the random blinks
    assert np.array_equal(job.ref_expression(0, 100)[30:60], eyeblink[:, :64])  # tiled whole
    plain_pose = np.concatenate([c.pose for c in plain.chunks(100)])
    ref_pose = np.concatenate([c.pose for c in job.chunks(100)])
    offsets = pose_video[np.arange(100) % 40, 64:70] - pose_video[0, 64:70]
    assert np.allclose(ref_pose - plain_pose, offsets, atol=1e-6)


@pytest.mark.parametrize("style", [-1, 46, 100])
def test_out_of_range_pose_style(pipeline, first_frame, speech_4s, style):
    with pytest.raises(InputError, match=f"pose style {style} is out of range: choose 0..45"):
        pipeline.prepare(CoeffRequest(speech_4s, first_frame, pose_style=style))


def test_first_frame_file_of_the_wrong_shape_is_named(pipeline, speech_4s, tmp_path):
    bad = tmp_path / "portrait.mat"
    scipy.io.savemat(bad, {"coeff_3dmm": np.zeros((1, 50), np.float32)})
    with pytest.raises(InputError) as info:
        pipeline.prepare(CoeffRequest(speech_4s, bad))
    assert str(bad) in str(info.value) and "(1, 50)" in str(info.value)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"something": np.zeros((1, 73))})
    with pytest.raises(InputError, match="no 'coeff_3dmm' entry"):
        pipeline.prepare(CoeffRequest(speech_4s, other))


def test_audio_shorter_than_a_frame(pipeline, first_frame, tmp_path):
    path = write_wav(tmp_path / "blip.wav", speech_like(0.03))
    with pytest.raises(InputError, match="shorter than one 25 fps video frame") as info:
        pipeline.prepare(CoeffRequest(path, first_frame))
    assert "blip.wav" in str(info.value)


def test_silent_audio_is_rejected(pipeline, first_frame, tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32))
    with pytest.raises(InputError, match="silent"):
        pipeline.prepare(CoeffRequest(path, first_frame))


@pytest.mark.parametrize("seconds", [0.04, 0.08, 0.5, 1.32])  # 1, 2, 12 (short window) and 33 frames
def test_short_clips(pipeline, first_frame, tmp_path, seconds):
    path = write_wav(tmp_path / "short.wav", speech_like(seconds, seed=3))
    coeff = pipeline.generate(CoeffRequest(path, first_frame))
    assert coeff.shape == (int(seconds * 25 + 1e-9), 70) and np.all(np.isfinite(coeff))


def test_engine_streams_motion_from_a_checkpoint_folder(tmp_path, first_frame, speech_4s):
    write_combined_safetensors(tmp_path, seed=7)
    engine = create_engine("sadtalker", checkpoint_dir=tmp_path)
    request = MotionRequest(audio=speech_4s, first_frame=first_frame, seed=4, chunk_frames=30, expression_scale=1.5)
    motion = Motion.from_chunks(engine.stream_motion(request), engine=engine.name, engine_version=engine.version)
    reference = Audio2Coeff(*seeded_audio_models(7)).generate(CoeffRequest(speech_4s, first_frame, seed=4))
    assert motion.n_frames == 100
    assert np.allclose(motion.expression, reference[:, :64], atol=1e-5)  # official rows: the scale is applied where shown
    assert np.allclose(motion.pose, reference[:, 64:], atol=1e-6)
    with pytest.raises(InputError, match="first-frame"):
        next(engine.stream_motion(MotionRequest(audio=speech_4s)))


def test_engine_reconstructs_the_first_frame_from_a_portrait(tmp_path, speech_4s):
    from talkbridge.core.face.extract import extract_first_frame, load_recon_net
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import write_landmarked_portrait

    folder = write_official_checkpoint_dir(tmp_path / "checkpoints", render=False)
    portrait = tmp_path / "portrait.png"
    image, landmarks = write_landmarked_portrait(portrait)
    engine = create_engine("sadtalker", checkpoint_dir=folder)
    request = MotionRequest(audio=speech_4s, image=portrait, options={"landmarks": landmarks}, chunk_frames=50)
    motion = Motion.from_chunks(engine.stream_motion(request), engine="sadtalker", engine_version="test")
    recon = load_recon_net(folder / "SadTalker_V0.0.2_256.safetensors")
    row = extract_first_frame(image, recon, landmarks=landmarks).row
    audio = engine.models.audio()
    direct = Audio2Coeff(audio.expnet, audio.posevae).generate(CoeffRequest(speech_4s, row))
    assert motion.n_frames == 100
    assert np.allclose(motion.coefficients(), direct, atol=1e-5)
    with pytest.raises(InputError, match="portrait image not found"):
        next(engine.stream_motion(MotionRequest(audio=speech_4s, image=tmp_path / "missing.png", options={"landmarks": landmarks})))

"""Behaviour of the lite engine: mouth shapes, blinks, pose, determinism and streaming."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from talkbridge.core.engine import MotionRequest, create_engine
from talkbridge.core.errors import InputError
from talkbridge.core.lite.articulation import ARKIT_INDEX, lip_aperture, loudness, mouth_curves
from talkbridge.core.lite.phones import PhoneSegment
from talkbridge.core.lite.procedural import BlinkConfig, GazeConfig, PoseConfig, blink_curve, gaze_curves, head_pose
from talkbridge.core.lite.samples import synthesize_speech
from talkbridge.core.motion import ARKIT_52, FPS, OCULUS_VISEMES, Motion

MOUTH_CHANNELS = [i for i, name in enumerate(ARKIT_52) if name.startswith(("jaw", "mouth", "tongue", "cheek"))]


def phones_from(spec: list[tuple[str, float]], start: float = 0.2) -> list[PhoneSegment]:
    """Consecutive phones of the given lengths, with silence before and after."""
    out, t = [PhoneSegment("SIL", 0.0, start)], start
    for phone, length in spec:
        out.append(PhoneSegment(phone, t, t + length))
        t += length
    out.append(PhoneSegment("SIL", t, t + 0.3))
    return out


def curves(phones: list[PhoneSegment], level: float = 0.8):
    duration = phones[-1].end
    n_frames = int(np.ceil(duration * FPS))
    return mouth_curves(phones, np.full(n_frames * 4, level, np.float32), n_frames)


def frame_at(seconds: float) -> int:
    return int(seconds * FPS)


def test_silence_gives_rest_pose():
    engine = create_engine("lite")
    motion = Motion.from_chunks(
        engine.stream_motion(MotionRequest(audio=np.zeros(16000 * 3, np.float32), seed=3)), engine="lite", engine_version="t"
    )
    assert motion.n_frames == 75
    assert motion.expression is None
    assert np.all(motion.arkit[:, MOUTH_CHANNELS] == 0.0)
    assert np.allclose(motion.visemes[:, OCULUS_VISEMES.index("viseme_sil")], 1.0)
    assert np.allclose(motion.visemes[:, 1:], 0.0)
    # A silent head only idles: well inside the speaking range.
    limits = np.array([PoseConfig().max_pitch, PoseConfig().max_yaw, PoseConfig().max_roll])
    assert np.all(np.abs(motion.pose[:, :3]) < 0.5 * limits)


def test_loudness_ignores_quiet_hiss_but_follows_the_voice():
    rng = np.random.default_rng(0)
    hiss = (0.001 * rng.standard_normal(16000 * 2)).astype(np.float32)  # about -60 dBFS room noise
    assert loudness(hiss).max() == 0.0
    t = np.arange(16000 * 2) / 16000
    voice = (0.2 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32) + hiss
    level = loudness(voice)
    on, off = level[::10][1::5], level[::10][3::5]  # every 0.1 s: mid-tone and mid-pause
    assert on.min() > 0.8 and off.max() == 0.0
    assert loudness(0.3 * voice).mean() > 0.5 * level.mean()  # a softer take still reads as voice


def test_bilabials_close_the_lips_between_open_vowels():
    spec = [("P", 0.08), ("AA", 0.16), ("P", 0.08), ("AA", 0.16), ("M", 0.09), ("AA", 0.16), ("M", 0.09), ("AA", 0.16)]
    phones = phones_from(spec)
    arkit, visemes = curves(phones)
    aperture = lip_aperture(arkit)
    bilabials = [p for p in phones if p.phone in "PM"]
    vowels = [p for p in phones if p.phone == "AA"]
    for phone in bilabials:
        assert aperture[frame_at(0.5 * (phone.start + phone.end))] == pytest.approx(0.0, abs=1e-6), phone
    for phone in vowels:
        assert aperture[frame_at(0.5 * (phone.start + phone.end))] > 0.3, phone
    # The PP viseme channel peaks at each bilabial too.
    pp = visemes[:, OCULUS_VISEMES.index("viseme_PP")]
    assert all(pp[frame_at(0.5 * (p.start + p.end))] > 0.5 for p in bilabials)


def test_open_vowels_open_the_jaw_more_than_closed_ones():
    jaw = ARKIT_INDEX["jawOpen"]
    opened = {}
    for vowel in ("AA", "AE", "IY", "UW"):
        arkit, _ = curves(phones_from([("T", 0.08), (vowel, 0.2), ("T", 0.08)]))
        opened[vowel] = arkit[:, jaw].max()
    assert min(opened["AA"], opened["AE"]) > 1.5 * max(opened["IY"], opened["UW"])


def test_louder_voice_opens_the_mouth_wider():
    phones = phones_from([("AA", 0.3)])
    soft, _ = curves(phones, level=0.3)
    loud, _ = curves(phones, level=1.0)
    jaw = ARKIT_INDEX["jawOpen"]
    assert loud[:, jaw].max() > 1.2 * soft[:, jaw].max() > 0


def test_coarticulation_ramps_instead_of_stepping():
    arkit, _ = curves(phones_from([("AA", 0.3), ("UW", 0.3)]))
    jaw, pucker = arkit[:, ARKIT_INDEX["jawOpen"]], arkit[:, ARKIT_INDEX["mouthPucker"]]
    # The pucker of "oo" starts rising before its phone begins (anticipation)...
    boundary = frame_at(0.5)
    assert 0.02 < pucker[boundary - 1] < pucker[boundary + 3]
    # ...and no channel jumps from one value to another in a single frame.
    assert np.abs(np.diff(arkit, axis=0)).max() < 0.3
    assert np.all((arkit >= 0) & (arkit <= 1))


def test_blink_rate_and_duration_over_a_long_clip():
    n = 10 * 60 * FPS
    blink = blink_curve(n, np.random.default_rng(7))
    closed = blink > 0.0
    starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    ends = np.flatnonzero(~closed[1:] & closed[:-1]) + 1
    per_minute = len(starts) / 10.0
    assert 12 <= per_minute <= 24
    lengths = (ends - starts[: len(ends)]) / FPS
    assert lengths.min() >= 0.08 and lengths.max() <= 0.4
    peaks = [blink[a:b].max() for a, b in zip(starts, ends)]
    assert min(peaks) == pytest.approx(1.0)
    gaps = np.diff(starts) / FPS
    assert gaps.min() >= BlinkConfig().min_interval_s


def test_pose_bounds_smoothness_intensity_and_still_over_a_long_clip():
    rng = np.random.default_rng(0)
    n = 5 * 60 * FPS
    level = np.clip(0.6 + 0.4 * np.sin(np.arange(n) / 7.0) + 0.2 * rng.standard_normal(n), 0, 1)
    level[: 20 * FPS] = 0.0  # a silent start
    config = PoseConfig()
    limits = np.array([config.max_pitch, config.max_yaw, config.max_roll] + [config.max_shift] * 3)
    full = head_pose(level, np.random.default_rng(1), intensity=1.0)
    half = head_pose(level, np.random.default_rng(1), intensity=0.5)
    assert np.all(np.abs(full) <= limits + 1e-7)
    assert np.all(np.abs(half) <= 0.5 * limits + 1e-7)
    assert np.abs(full[:, 1]).max() > 0.3 * limits[1]  # it does move
    assert np.abs(np.diff(full[:, :3], axis=0)).max() < np.deg2rad(1.5)  # no jumps at 25 fps
    # The head is livelier while speaking than during the silent start.
    assert full[20 * FPS :, 1].std() > 1.5 * full[: 20 * FPS, 1].std()
    assert not np.any(head_pose(level, np.random.default_rng(1), still=True))


def test_gaze_fixates_and_jumps_within_bounds():
    gaze = gaze_curves(3 * 60 * FPS, np.random.default_rng(2))
    assert set(gaze) == {name for name in ARKIT_52 if name.startswith("eyeLook")}
    horizontal = gaze["eyeLookOutLeft"] - gaze["eyeLookInLeft"]
    assert np.array_equal(horizontal, gaze["eyeLookInRight"] - gaze["eyeLookOutRight"])  # both eyes together
    assert max(np.abs(g).max() for g in gaze.values()) <= GazeConfig().limit
    moving = np.abs(np.diff(horizontal)) > 1e-9
    assert 0.02 < moving.mean() < 0.15  # mostly still (fixations), with quick jumps
    assert np.abs(horizontal).max() > 0.05


@pytest.fixture(scope="module")
def papa_wav(tmp_path_factory):
    return synthesize_speech("papa mama, papa mama", tmp_path_factory.mktemp("speech") / "papa.wav")


def test_transcript_alignment_closes_lips_at_each_bilabial_in_real_speech(papa_wav):
    engine = create_engine("lite")
    request = MotionRequest(audio=papa_wav, transcript="Papa mama, papa mama.", seed=1)
    motion = Motion.from_chunks(engine.stream_motion(request), engine="lite", engine_version="t")
    plan = engine.plan(request)
    assert plan.phone_source == "alignment" and np.array_equal(plan.arkit, motion.arkit)
    bilabials = [p for p in plan.phones if p.phone in ("P", "M")]
    assert len(bilabials) == 8
    aperture = lip_aperture(motion.arkit)
    for phone in bilabials:
        frames = range(int(phone.start * FPS), int(np.ceil(phone.end * FPS)))
        assert min(aperture[f] for f in frames) < 0.02, phone
    assert aperture.max() > 0.3


def test_same_seed_same_motion_and_chunks_equal_whole(papa_wav):
    engine = create_engine("lite")

    def run(seed: int, chunk_frames: int) -> Motion:
        request = MotionRequest(audio=papa_wav, seed=seed, chunk_frames=chunk_frames)
        chunks = list(engine.stream_motion(request))
        assert all(c.n_frames <= chunk_frames for c in chunks)
        return Motion.from_chunks(chunks, engine="lite", engine_version="t")

    whole, chunked, other = run(5, 10_000), run(5, 7), run(6, 7)
    assert len(list(engine.stream_motion(MotionRequest(audio=papa_wav, chunk_frames=7)))) > 1
    for name in ("pose", "blink", "arkit", "visemes"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
    assert not np.array_equal(whole.pose, other.pose)
    assert np.array_equal(whole.arkit[:, MOUTH_CHANNELS], other.arkit[:, MOUTH_CHANNELS])


def test_unalignable_transcript_falls_back_with_a_warning(papa_wav, caplog):
    engine = create_engine("lite")
    with caplog.at_level(logging.WARNING):
        plan = engine.plan(MotionRequest(audio=papa_wav, transcript="papa qzxvv"))
    assert plan.phone_source == "recognition"
    assert "qzxvv" in caplog.text


def test_bad_audio_names_the_file(tmp_path):
    engine = create_engine("lite")
    missing = tmp_path / "nope.wav"
    with pytest.raises(InputError, match="nope.wav"):
        list(engine.stream_motion(MotionRequest(audio=missing)))
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    with pytest.raises(InputError, match="garbage.wav"):
        list(engine.stream_motion(MotionRequest(audio=garbage)))

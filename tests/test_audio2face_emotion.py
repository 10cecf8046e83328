"""`--emotion auto`: Audio2Emotion's class scores become the A2F network's explicit emotions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.core.audio2face.emotion_model import Audio2Emotion, EmotionPostProcessor, load_emotion_folder
from talkbridge.core.audio2face.engine import Audio2FaceEngine
from talkbridge.core.emotion import AUTO
from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import CheckpointError
from talkbridge.core.motion import EMOTIONS, Motion
from tests.audio2emotion_models import A2F_SLOTS, CLASSES, POST_PROCESSING, write_emotion_folder, write_emotion_onnx
from tests.audio2face_models import EXPLICIT, write_model_folder
from tests.speech import speech_like, write_wav


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("a2e")
    return write_model_folder(root / "a2f"), write_emotion_folder(root / "a2e")


def reference_post(logit_rows, config, correspondence):
    """The SPEC's post-processing written out plainly, in float64, one inference after another."""
    out, a2f = [], np.zeros(config["output_emotion_length"])
    previous = blended = None
    for logits in logit_rows:
        e = np.exp(config["emotion_contrast"] * np.asarray(logits, np.float64))
        p = e / e.sum()
        p = np.where(correspondence < 0, 0.0, p)
        keep = np.argsort(-p)[: config["max_emotions"]]
        p = np.where(np.isin(np.arange(p.size), keep), p, 0.0)
        for cls, slot in enumerate(correspondence):
            if slot >= 0:
                a2f[slot] = p[cls]
        c = config["live_blend_coef"]
        a2f = (1 - c) * a2f + c * (np.zeros_like(a2f) if previous is None else previous)
        previous = a2f.copy()
        if config["enable_preferred_emotion"]:
            s = config["preferred_emotion_strength"]
            a2f = (1 - s) * a2f + s * np.asarray(config["preferred_emotion"])
        if blended is not None:
            w = min(config["fixed_dt"] / config["transition_smoothing"], 1.0)
            a2f = w * a2f + (1 - w) * blended
        blended = a2f.copy()
        a2f = a2f * config["emotion_strength"]
        out.append(a2f.copy())
    return np.array(out)


CORRESPONDENCE = np.array([A2F_SLOTS[name] for name in CLASSES])


@pytest.mark.parametrize("overrides", [{}, {"enable_preferred_emotion": False, "max_emotions": 6},
                                       {"transition_smoothing": 0.1, "live_blend_coef": 0.0}])
def test_post_processing_matches_the_reference(models, tmp_path, overrides):
    folder = write_emotion_folder(tmp_path / "a2e", **overrides)
    post = EmotionPostProcessor(load_emotion_folder(folder.root).params)
    logits = np.random.default_rng(5).normal(0, 2, (7, len(CLASSES)))
    got = np.stack([post.step(row) for row in logits])
    expected = reference_post(logits, {**POST_PROCESSING, **overrides}, CORRESPONDENCE)
    assert np.allclose(got, expected, atol=1e-6)
    # Things that must hold: "neutral" never reaches A2F; at most max_emotions slots come from the scores.
    assert got.shape == (7, 10)


def test_max_emotions_keeps_only_the_largest_scores(tmp_path):
    folder = write_emotion_folder(tmp_path / "a2e", max_emotions=2, enable_preferred_emotion=False, live_blend_coef=0.0,
                                  emotion_strength=1.0)
    post = EmotionPostProcessor(load_emotion_folder(folder.root).params)
    logits = np.array([0.1, 2.0, 0.3, 1.5, 9.0, 0.2])  # neutral is largest but has no A2F slot
    first = post.step(logits)
    assert np.count_nonzero(first) == 2
    assert first[A2F_SLOTS["disgust"]] > first[A2F_SLOTS["happy"]] > 0


def reference_frames(model, samples, n_frames, fps=25, stride=25, window=60000):
    """Windows centred on every stride-th frame's sample (zero-padded), post-processed, then interpolated."""
    keys_at = list(range(0, n_frames, stride))
    windows = np.zeros((len(keys_at), window), np.float32)
    for row, frame in enumerate(keys_at):
        centre = frame * 16000 // fps
        for j in range(window):
            source = centre - window // 2 + j
            if 0 <= source < samples.size:
                windows[row, j] = samples[source]
    keys = reference_post(model.network(windows), POST_PROCESSING, CORRESPONDENCE)
    out = np.zeros((n_frames, 10))
    for slot, name in enumerate(EXPLICIT):
        out[:, EMOTIONS.index(name)] = np.interp(np.arange(n_frames), keys_at, keys[:, slot])
    return out


def test_clip_frames_follow_the_windows_and_interpolate(models):
    _, a2e = models
    samples = speech_like(2.3, seed=2).astype(np.float32)
    n_frames = 58
    got = Audio2Emotion(a2e.root, device="cpu", window=16000, stride_frames=10).frames(samples, n_frames, 25, EXPLICIT)
    expected = reference_frames(a2e, samples, n_frames, stride=10, window=16000)
    assert np.allclose(got, expected, atol=1e-5)
    assert np.ptp(got[:, EMOTIONS.index("joy")]) > 1e-3  # the emotion moves with the speech


def run(engine, audio, chunk_frames=16, **options):
    request = MotionRequest(audio=audio, seed=1, chunk_frames=chunk_frames, options=options)
    return Motion.from_chunks(list(engine.stream_motion(request)), engine=engine.name, engine_version=engine.version)


def test_engine_feeds_audio2emotion_to_the_network(models):
    a2f, a2e = models
    samples = speech_like(1.6, seed=3).astype(np.float32)
    engine = Audio2FaceEngine(a2f.root, device="cpu", emotion_model_dir=a2e.root)
    auto = run(engine, samples, emotion=AUTO)
    expected = reference_frames(a2e, samples, auto.n_frames)
    assert np.allclose(auto.emotion, expected, atol=1e-5)
    plain = run(engine, samples)
    assert not np.allclose(auto.arkit, plain.arkit, atol=1e-4)  # the network heard the emotions


def test_generate_with_emotion_auto_uses_the_stores_audio2emotion(models, tmp_path, monkeypatch):
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait
    from talkbridge.exporters.motion_file import load_motion

    a2f, _ = models
    store = tmp_path / "store"
    write_emotion_folder(store / "audio2emotion")
    monkeypatch.setenv("TALKBRIDGE_MODELS", str(store))
    samples = speech_like(1.2, seed=6).astype(np.float32)
    audio = write_wav(tmp_path / "line.wav", samples)
    code = main(["-q", "generate", str(write_portrait(tmp_path / "p.png")), str(audio), "-o", str(tmp_path / "out"),
                 "--engine", "audio2face", "--checkpoints", str(a2f.root), "--size", "64", "--emotion", "auto"])
    assert code == 0
    motion = load_motion(tmp_path / "out" / "line.motion.npz")
    engine = Audio2FaceEngine(a2f.root, device="cpu", emotion_model_dir=store / "audio2emotion")
    direct = run(engine, audio, emotion=AUTO)
    assert np.allclose(motion.emotion, direct.emotion, atol=1e-5) and np.ptp(motion.emotion) > 1e-3
    assert motion.metadata["emotion_source"].startswith("audio2emotion")


def test_missing_model_names_the_file_and_the_download(models, tmp_path, monkeypatch):
    a2f, _ = models
    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "empty"))
    engine = Audio2FaceEngine(a2f.root, device="cpu")
    with pytest.raises(CheckpointError) as caught:
        engine.plan(MotionRequest(audio=speech_like(0.5).astype(np.float32), options={"emotion": AUTO}))
    text = str(caught.value)
    assert "model.json" in text and "models download audio2emotion" in text and "Audio2Face" in text


def _damage_config(root, **changes):
    path = root / "model_config.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data["post_processing_config"][key]
        else:
            data["post_processing_config"][key] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage, file_name, words", [
    (lambda root: _damage_config(root, emotion_contrast=None), "model_config.json", "emotion_contrast"),
    (lambda root: _damage_config(root, preferred_emotion=[0.0] * 3), "model_config.json", "preferred_emotion"),
    (lambda root: _damage_config(root, emotion_correspondence={"angry": 1}), "model_config.json", "disgust"),
    (lambda root: _damage_config(root, emotion_correspondence={**A2F_SLOTS, "sad": 12}), "model_config.json", "sad"),
    (lambda root: (root / "network_info.json").write_text("{}"), "network_info.json", "emotions"),
    (lambda root: (root / "network.onnx").unlink(), "network.onnx", "network.onnx"),
    (lambda root: write_emotion_onnx(root / "network.onnx", np.ones((2, 6)), np.zeros(6), names=("audio", "output")),
     "network.onnx", "input_values"),
    (lambda root: write_emotion_onnx(root / "network.onnx", np.ones((2, 4)), np.zeros(4)), "network.onnx", "4 classes"),
])
def test_broken_emotion_folders_name_the_file_and_the_problem(tmp_path, damage, file_name, words):
    folder = write_emotion_folder(tmp_path / "a2e")
    damage(folder.root)
    with pytest.raises(CheckpointError) as caught:
        Audio2Emotion(folder.root, device="cpu")
    assert file_name in str(caught.value) and words in str(caught.value)

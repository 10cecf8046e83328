"""Audio2Emotion: per-frame explicit emotions for the Audio2Face network, read from the speech itself.

``--emotion auto`` runs NVIDIA's Audio2Emotion classifier on long windows of the clip and turns its
class scores into the 10 explicit A2F emotions with the SDK's post-processing, step for step: a
softmax sharpened by ``emotion_contrast``; classes without an A2F counterpart zeroed; only the
``max_emotions`` largest kept; moved to A2F's slots by ``emotion_correspondence``; blended with the
previous inference (``live_blend_coef``), optionally toward ``preferred_emotion``; smoothed over time
(w = min(``fixed_dt`` / ``transition_smoothing``, 1)); scaled by ``emotion_strength``. Inferences run
every ``stride`` frames and are interpolated linearly per frame, as A2F's emotion track is read.

Licence: NVIDIA lets Audio2Emotion be used only together with Audio2Face and not as an emotion
recogniser, so this module feeds nothing but the audio2face engine's emotion input.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from talkbridge.core.audio2face.files import folder_file
from talkbridge.core.audio2face.network import _import_onnxruntime, providers_for
from talkbridge.core.audio2face.windows import audio_windows, target_samples
from talkbridge.core.errors import CheckpointError
from talkbridge.core.motion import EMOTIONS

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
DEFAULT_CONFIG = "model_config.json"
INPUT = "input_values"
OUTPUT = "output"
# The SDK leaves the window to its caller; its sample uses 60000 samples (3.75 s) and about one
# inference a second, which is what talkbridge does at 25 fps.
DEFAULT_WINDOW = 60000
DEFAULT_STRIDE_FRAMES = 25
LICENCE = ("Audio2Emotion's licence allows it only together with Audio2Face (NVIDIA Open Model License, "
           "Audio2Emotion gate terms), so --emotion auto works with --engine audio2face only")


@dataclass(frozen=True)
class PostProcessParams:
    """``post_processing_config`` of the A2E model config (names as in the file)."""

    output_emotion_length: int
    emotion_contrast: float
    max_emotions: int
    live_blend_coef: float
    enable_preferred_emotion: bool
    preferred_emotion_strength: float
    preferred_emotion: np.ndarray
    transition_smoothing: float
    fixed_dt: float
    emotion_strength: float
    correspondence: np.ndarray  # per A2E class: A2F output slot, or -1


@dataclass(frozen=True)
class EmotionModelFolder:
    root: Path
    network_path: Path
    emotions: tuple[str, ...]
    samplerate: int
    params: PostProcessParams


def _read_json(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise CheckpointError("Audio2Emotion file is missing", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read this JSON ({error})", path) from None
    if not isinstance(data, dict):
        raise CheckpointError("expected a JSON object", path)
    return data


def _key(data: Mapping[str, Any], key: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise CheckpointError(f"has no key {key!r}", path)
    value = data[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise CheckpointError(f"key {key!r} has the wrong type ({type(value).__name__})", path)
    return value


def _beside(model_json: Path, data: Mapping[str, Any], key: str, default: str | None = None) -> Path:
    name = data.get(key, default) if default is not None else _key(data, key, model_json, str)
    return folder_file(model_json, name, key)


def _network_path(model_json: Path, data: Mapping[str, Any]) -> Path:
    """``networkPath`` names a TensorRT engine that is never shipped: use the ONNX beside it."""
    named = _beside(model_json, data, "networkPath")
    if named.suffix.lower() == ".onnx" and named.is_file():
        return named
    onnx_path = named.parent / "network.onnx"
    if not onnx_path.is_file():
        raise CheckpointError(f"no network.onnx beside {named.name} (model.json networkPath)", onnx_path)
    return onnx_path


def _params(path: Path, emotions: tuple[str, ...]) -> PostProcessParams:
    data = _key(_read_json(path), "post_processing_config", path, dict)
    number = (int, float)
    length = _key(data, "output_emotion_length", path, int)
    preferred = _key(data, "preferred_emotion", path, list)
    if len(preferred) != length:
        raise CheckpointError(f"key 'preferred_emotion' has {len(preferred)} values, 'output_emotion_length' says {length}", path)
    table = _key(data, "emotion_correspondence", path, dict)
    correspondence = []
    for name in emotions:
        if name not in table:
            raise CheckpointError(f"key 'emotion_correspondence' has no entry for the network's emotion {name!r}", path)
        slot = table[name]
        if isinstance(slot, bool) or not isinstance(slot, int) or not -1 <= slot < length:
            raise CheckpointError(f"emotion_correspondence[{name!r}] = {slot!r} is not -1 or a slot below {length}", path)
        correspondence.append(slot)
    return PostProcessParams(
        output_emotion_length=length,
        emotion_contrast=float(_key(data, "emotion_contrast", path, number)),
        max_emotions=_key(data, "max_emotions", path, int),
        live_blend_coef=float(_key(data, "live_blend_coef", path, number)),
        enable_preferred_emotion=_key(data, "enable_preferred_emotion", path, bool),
        preferred_emotion_strength=float(_key(data, "preferred_emotion_strength", path, number)),
        preferred_emotion=np.asarray(preferred, np.float32),
        transition_smoothing=float(_key(data, "transition_smoothing", path, number)),
        fixed_dt=float(_key(data, "fixed_dt", path, number)),
        emotion_strength=float(_key(data, "emotion_strength", path, number)),
        correspondence=np.asarray(correspondence, np.int64),
    )


def load_emotion_folder(root: str | Path) -> EmotionModelFolder:
    """Read and check an Audio2Emotion folder (``model.json`` -> network info, config, ONNX)."""
    root = Path(root)
    model_json = root if root.is_file() else root / MODEL_JSON
    data = _read_json(model_json)
    info_path = _beside(model_json, data, "networkInfoPath")
    info = _read_json(info_path)
    emotions = _key(info, "emotions", info_path, list)
    if not emotions or not all(isinstance(name, str) for name in emotions):
        raise CheckpointError("key 'emotions' must be a non-empty list of names", info_path)
    audio = _key(info, "audio_params", info_path, dict)
    samplerate = _key(audio, "samplerate", info_path, int)
    if samplerate != 16000:
        raise CheckpointError(f"audio_params.samplerate is {samplerate}; talkbridge feeds 16000 Hz audio", info_path)
    params = _params(_beside(model_json, data, "modelConfigPath", DEFAULT_CONFIG), tuple(emotions))
    return EmotionModelFolder(model_json.parent, _network_path(model_json, data), tuple(emotions), samplerate, params)


class EmotionPostProcessor:
    """The SDK's per-inference post-processing with its state (first inference, previous results).

    The A2F-side vector persists between inferences: slots no A2E class writes keep what the last
    inference left there (after strength), exactly as the SDK's working buffer does.
    """

    def __init__(self, params: PostProcessParams) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        size = self.params.output_emotion_length
        self.first = True
        self.a2f = np.zeros(size, np.float32)  # the SDK starts from its "beginning emotion", all zeros
        self.previous = np.zeros(size, np.float32)
        self.previous_blended = np.zeros(size, np.float32)

    def step(self, logits: np.ndarray) -> np.ndarray:
        """A2F-slot emotions (output_emotion_length,) for one inference's class ``logits``."""
        p = self.params
        scaled = np.asarray(logits, np.float32) * np.float32(p.emotion_contrast)
        probabilities = np.exp(scaled - scaled.max())
        probabilities /= probabilities.sum()
        probabilities[p.correspondence < 0] = 0.0
        if p.max_emotions < probabilities.size:
            smallest = np.argsort(probabilities, kind="stable")[: probabilities.size - p.max_emotions]
            probabilities[smallest] = 0.0
        mapped = p.correspondence >= 0
        self.a2f[p.correspondence[mapped]] = probabilities[mapped]
        source = np.zeros_like(self.a2f) if self.first else self.previous
        self.a2f = (1.0 - p.live_blend_coef) * self.a2f + p.live_blend_coef * source
        self.previous = self.a2f.copy()
        if p.enable_preferred_emotion:
            s = p.preferred_emotion_strength
            self.a2f = (1.0 - s) * self.a2f + s * p.preferred_emotion
        if not self.first:
            w = min(p.fixed_dt / max(p.transition_smoothing, 1e-3), 1.0)
            self.a2f = w * self.a2f + (1.0 - w) * self.previous_blended
        self.previous_blended = self.a2f.copy()
        self.a2f = (self.a2f * np.float32(p.emotion_strength)).astype(np.float32)
        self.first = False
        return self.a2f.copy()


class Audio2Emotion:
    """An Audio2Emotion model on onnxruntime, giving per-frame A2F explicit emotions for a clip."""

    def __init__(self, root: str | Path, device: str = "auto", window: int = DEFAULT_WINDOW,
                 stride_frames: int = DEFAULT_STRIDE_FRAMES, batch: int = 8) -> None:
        self.folder = load_emotion_folder(root)
        self.window = int(window)
        self.stride_frames = max(1, int(stride_frames))
        self.batch = max(1, int(batch))
        ort = _import_onnxruntime()
        path = self.folder.network_path
        self.providers = providers_for(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), providers=self.providers)
        except Exception as error:  # onnxruntime's own error types for unreadable graphs
            raise CheckpointError(f"onnxruntime cannot load this Audio2Emotion network ({error})", path) from None
        inputs = {node.name: node.shape for node in self.session.get_inputs()}
        outputs = {node.name: node.shape for node in self.session.get_outputs()}
        if INPUT not in inputs or len(inputs[INPUT]) != 2:
            raise CheckpointError(f"expected input {INPUT!r} [B, samples]; inputs: {inputs}", path)
        if OUTPUT not in outputs or len(outputs[OUTPUT]) != 2:
            raise CheckpointError(f"expected output {OUTPUT!r} [B, classes]; outputs: {outputs}", path)
        classes = outputs[OUTPUT][1]
        if isinstance(classes, int) and classes != len(self.folder.emotions):
            raise CheckpointError(f"output {OUTPUT!r} has {classes} classes; network_info.json names {len(self.folder.emotions)}", path)
        log.info("audio2emotion %s on %s: %d classes", path, self.providers[0], len(self.folder.emotions))

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """(N, classes) raw scores for (N, window) audio, in batches."""
        out = []
        for start in range(0, windows.shape[0], self.batch):
            part = np.ascontiguousarray(windows[start : start + self.batch], np.float32)
            result = np.asarray(self.session.run([OUTPUT], {INPUT: part})[0], np.float32)
            if result.shape != (part.shape[0], len(self.folder.emotions)):
                raise CheckpointError(f"output {OUTPUT!r} came back as {result.shape}, expected "
                                      f"[{part.shape[0]}, {len(self.folder.emotions)}]", self.folder.network_path)
            out.append(result)
        return np.concatenate(out, axis=0)

    def frames(self, samples: np.ndarray, n_frames: int, fps: int, a2f_emotions: tuple[str, ...]) -> np.ndarray:
        """(n_frames, 10) float32 in talkbridge's EMOTIONS order; ``a2f_emotions`` names the A2F slots."""
        length = self.folder.params.output_emotion_length
        if len(a2f_emotions) != length:
            raise CheckpointError(f"output_emotion_length is {length} but the Audio2Face model has "
                                  f"{len(a2f_emotions)} explicit emotions", self.folder.root)
        inference_frames = np.arange(0, max(1, n_frames), self.stride_frames, dtype=np.int64)
        targets = target_samples(0, int(inference_frames[-1]) + 1, fps, 1, self.folder.samplerate)[inference_frames]
        windows = audio_windows(samples, targets, self.window, self.window // 2, 1.0)
        post = EmotionPostProcessor(self.folder.params)
        keys = np.stack([post.step(row) for row in self.logits(windows)])
        frame_index = np.arange(n_frames, dtype=np.float64)
        out = np.zeros((n_frames, len(EMOTIONS)), np.float32)
        for slot, name in enumerate(a2f_emotions):
            if name in EMOTIONS:
                out[:, EMOTIONS.index(name)] = np.interp(frame_index, inference_frames, keys[:, slot])
        return out

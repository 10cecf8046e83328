"""Synthetic Audio2Emotion folders in the SDK's layout, for tests.

``model.json`` (networkInfoPath, networkPath naming the unshipped ``network.trt``, modelConfigPath),
``network_info.json`` (``emotions``, ``audio_params.samplerate``), ``model_config.json``
(``post_processing_config``) and a ``network.onnx`` at opset 14 with the real tensor names:
``input_values`` [B, samples] (any length) -> ``output`` [B, classes]. The network reduces each
window to two numbers (its mean and its mean square) and maps them linearly to the class scores, so a
test can compute its output exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Audio2Emotion v2.2's classes as its model card lists them; "neutral" has no A2F counterpart.
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad")
A2F_SLOTS = {"angry": 1, "disgust": 3, "fear": 4, "happy": 6, "neutral": -1, "sad": 9}

POST_PROCESSING = {
    "output_emotion_length": 10, "emotion_contrast": 1.7, "max_emotions": 3, "live_blend_coef": 0.6,
    "enable_preferred_emotion": True, "preferred_emotion_strength": 0.3,
    "preferred_emotion": [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0],
    "transition_smoothing": 0.5, "fixed_dt": 0.2, "emotion_strength": 0.8,
}


@dataclass
class SyntheticEmotionModel:
    root: Path
    weights: np.ndarray  # (2, classes)
    bias: np.ndarray  # (classes,)

    def network(self, windows: np.ndarray) -> np.ndarray:
        """What network.onnx returns for (N, samples) windows."""
        windows = windows.astype(np.float64)
        features = np.stack([windows.mean(axis=1), (windows * windows).mean(axis=1)], axis=1)
        return (features @ self.weights + self.bias).astype(np.float32)


def write_emotion_onnx(path: Path, weights: np.ndarray, bias: np.ndarray,
                       names: tuple[str, str] = ("input_values", "output")) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [names[0]], ["mean"], axes=[1], keepdims=1),
            helper.make_node("Mul", [names[0], names[0]], ["square"]),
            helper.make_node("ReduceMean", ["square"], ["power"], axes=[1], keepdims=1),
            helper.make_node("Concat", ["mean", "power"], ["features"], axis=1),
            helper.make_node("MatMul", ["features", "W"], ["scores"]),
            helper.make_node("Add", ["scores", "b"], [names[1]]),
        ],
        "a2e_synthetic",
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, ["batch_size", "samples"])],
        [helper.make_tensor_value_info(names[1], TensorProto.FLOAT, ["batch_size", weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "W"),
                     numpy_helper.from_array(bias.astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_emotion_folder(root: Path, seed: int = 0, **post_processing) -> SyntheticEmotionModel:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Large weights so the scores move visibly with the speech's loudness.
    weights = rng.normal(0.0, 30.0, (2, len(CLASSES)))
    bias = rng.normal(0.0, 0.5, len(CLASSES))
    (root / "model.json").write_text(json.dumps(
        {"networkInfoPath": "network_info.json", "networkPath": "network.trt", "modelConfigPath": "model_config.json"}))
    (root / "network_info.json").write_text(json.dumps({"emotions": list(CLASSES), "audio_params": {"samplerate": 16000}}))
    config = {**POST_PROCESSING, "emotion_correspondence": dict(A2F_SLOTS), **post_processing}
    (root / "model_config.json").write_text(json.dumps({"post_processing_config": config}))
    write_emotion_onnx(root / "network.onnx", weights, bias)
    return SyntheticEmotionModel(root, weights, bias)

"""The shipped ``network.onnx`` on onnxruntime: many frames per call, on the CPU or CUDA.

Frames are independent for the network (all state lives in the post-processing), so windows of a
whole chunk go through one batched call; a model exported with a fixed batch of 1 is run frame by
frame instead. Tensor names and sizes are checked when the session opens, so a wrong file fails with
its name rather than inside onnxruntime.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from talkbridge.core.audio2face.files import NetworkInfo
from talkbridge.core.errors import CheckpointError, InputError

log = logging.getLogger(__name__)

INPUT_AUDIO = "input"
INPUT_EMOTION = "emotion"
OUTPUT = "result"
DEFAULT_BATCH = 64


def providers_for(device: str, available: list[str]) -> list[str]:
    """onnxruntime providers for talkbridge's ``device`` option (CUDA only where it is installed)."""
    base = device.partition(":")[0]
    if base == "cuda" and "CUDAExecutionProvider" not in available:
        raise InputError("device 'cuda' needs onnxruntime-gpu with a CUDA GPU; this onnxruntime has only: " + ", ".join(available))
    if base in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise InputError(
            "the audio2face engine needs onnxruntime: pip install 'talkbridge[audio2face]' (or onnxruntime-gpu for CUDA)"
        ) from None
    return onnxruntime


class A2FNetwork:
    """One onnxruntime session of an Audio2Face-3D regression network."""

    def __init__(self, path: Path, info: NetworkInfo, device: str = "auto", threads: int | None = None,
                 batch: int = DEFAULT_BATCH) -> None:
        ort = _import_onnxruntime()
        self.path = Path(path)
        self.info = info
        options = ort.SessionOptions()
        threads = threads or int(os.environ.get("TALKBRIDGE_A2F_THREADS", "0") or 0)
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.providers = providers_for(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
        except Exception as error:  # onnxruntime raises its own types for unreadable or invalid graphs
            raise CheckpointError(f"onnxruntime cannot load this network ({error})", self.path) from None
        self.batch = self._check_interface(max(1, int(batch)))
        log.info("audio2face network %s on %s, %d frames per call", self.path.name, self.providers[0], self.batch)

    def _check_interface(self, batch: int) -> int:
        """Check names and sizes; returns the batch the graph allows (1 when its batch axis is fixed at 1)."""
        inputs = {node.name: node.shape for node in self.session.get_inputs()}
        outputs = {node.name: node.shape for node in self.session.get_outputs()}
        expected = {
            INPUT_AUDIO: self.info.buffer_len, INPUT_EMOTION: self.info.emotion_size,
        }
        for name, size in expected.items():
            if name not in inputs:
                raise CheckpointError(f"has no input tensor {name!r} (inputs: {', '.join(inputs)})", self.path)
            if len(inputs[name]) != 3 or inputs[name][-1] not in (size, None) and not isinstance(inputs[name][-1], str):
                raise CheckpointError(f"input {name!r} has shape {inputs[name]}, expected [B, 1, {size}] (network_info.json)", self.path)
        if OUTPUT not in outputs:
            raise CheckpointError(f"has no output tensor {OUTPUT!r} (outputs: {', '.join(outputs)})", self.path)
        last = outputs[OUTPUT][-1] if outputs[OUTPUT] else None
        if isinstance(last, int) and last != self.info.result_size:
            raise CheckpointError(f"output {OUTPUT!r} has {last} values per frame; network_info.json adds up to {self.info.result_size}", self.path)
        first = inputs[INPUT_AUDIO][0]
        return 1 if first == 1 else batch

    def run(self, windows: np.ndarray, emotions: np.ndarray) -> np.ndarray:
        """(T, result_size) float32 for windows (T, buffer_len) and emotions (T, 1, emotion_size)."""
        n = windows.shape[0]
        out = np.empty((n, self.info.result_size), np.float32)
        for start in range(0, n, self.batch):
            stop = min(n, start + self.batch)
            feed = {
                INPUT_AUDIO: np.ascontiguousarray(windows[start:stop, None, :], np.float32),
                INPUT_EMOTION: np.ascontiguousarray(emotions[start:stop], np.float32),
            }
            result = self.session.run([OUTPUT], feed)[0]
            if result.size != (stop - start) * self.info.result_size:
                raise CheckpointError(
                    f"output {OUTPUT!r} came back with shape {result.shape}, expected [{stop - start}, 1, {self.info.result_size}]",
                    self.path,
                )
            out[start:stop] = result.reshape(stop - start, -1)
        return out

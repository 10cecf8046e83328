"""bench/audio2face.py --smoke runs end to end and prints every row with sane values; the nvidia network's build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_audio2face_bench_smoke():
    networks = ["nvidia", "linear", "conv"]
    command = [sys.executable, "-m", "bench.audio2face", "--smoke", "--seconds", "1", "--threads", "1", "--single-frames", "5"]
    for network in networks:
        command += ["--network", network]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = json.loads(completed.stdout.strip().splitlines()[-1].removeprefix("JSON: "))
    for network in networks:
        names = [row["row"] for row in rows if row["network"] == network]
        assert names.count("network fps") == 2 and "post-processing" in names and "engine real-time factor" in names, network
    assert all(row["value"] > 0 for row in rows if row["row"] != "solver fallbacks to BVLS")


def test_nvidia_network_sizes_and_export(tmp_path):
    """The real sizes add up to the Training Framework's graph; the tiny export keeps the shipped interface."""
    import onnxruntime
    import torch

    from bench.a2f_nvidia_network import NvidiaSizes, build_network, parameter_count, write_nvidia_network

    # conv_w2v_autocorr at its defaults with Mark's outputs: wav2vec2-base's encoder with one layer
    # (16,404,352) plus the autocorrelation, time and output layers (1,868,979).
    assert parameter_count(build_network(NvidiaSizes())) == 18_273_331
    path = tmp_path / "network.onnx"
    sizes = write_nvidia_network(path, 8320, 26, 16 + 4 + 15 + 4, skin=16, tongue=4, tiny=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("input", ["batch_size", 1, 8320]),
                                                                 ("emotion", ["batch_size", 1, 26])]
    assert [o.name for o in session.get_outputs()] == ["result"]
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, (3, 1, 8320)).astype(np.float32)
    emotion = rng.normal(0, 1, (3, 1, 26)).astype(np.float32)
    result = session.run(["result"], {"input": audio, "emotion": emotion})[0]
    with torch.no_grad():
        expected = build_network(sizes).eval()(torch.from_numpy(audio), torch.from_numpy(emotion)).numpy()
    assert result.shape == (3, 1, 39)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)
    # frames are independent: one frame alone gives its batched row
    alone = session.run(["result"], {"input": audio[1:2], "emotion": emotion[1:2]})[0]
    np.testing.assert_allclose(alone[0], result[1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="result 40"):
        write_nvidia_network(tmp_path / "bad.onnx", 8320, 26, 40, skin=16, tongue=4, tiny=True)

"""Benchmark of the audio2face engine on a model with Mark v2.3's real sizes (random weights).

    ./scripts/dev bench audio2face [--seconds 10] [--threads 2] [--network nvidia] [--network conv] ...
    python -m bench.audio2face --smoke     # tiny sizes: checks the bench runs

The bench writes a model folder in the Hugging Face layout with Mark's sizes: 8320-sample windows,
272 + 10 + 15 + 4 outputs, 61,520 skin and 5,602 tongue vertices, 52 ARKit poses solved on a
10,085-vertex mask and 16 tongue poses. NVIDIA's trained network is not downloadable here, so
``network.onnx`` has random weights. ``nvidia`` (the default) is the architecture NVIDIA's Training
Framework trains and exports, ``conv_w2v_autocorr`` with its default hyper-parameters
(bench/a2f_nvidia_network.py: wav2vec2-base's encoder cut after one transformer layer, autocorrelation
features, emotion-conditioned time convolutions; 18.27 M parameters in the exported graph, Mark's card
says 18.6 M; 1.62 GMAC per frame), built in torch and exported as ``train_regression.py`` does, so its
cost is the shipped network's. Two stand-ins remain for comparison: ``conv``, a wav2vec2-style
convolutional encoder and dense layers (about 18 M parameters), and ``linear``, a single matrix
product, to show post-processing alone. ``--network`` repeats: each network gets its own rows.

Prints, measured in this run on ``--threads`` onnxruntime threads:
* network frames per second, all frames of a chunk in one call against one frame per call;
* post-processing (skin filters, solve, tongue, jaw, eyes) per frame;
* the whole engine's real-time factor (seconds of compute per second of audio; < 1 is faster than real time).
Timings on a shared machine are noisy: run it on an idle one before quoting figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NETWORKS = ("nvidia", "conv", "linear")
MARK = {"skin_shapes": 272, "tongue_shapes": 10, "skin_vertices": 61520, "tongue_vertices": 5602, "mask_vertices": 10085}


def write_conv_network(path: Path, buffer_len: int, emotion_size: int, result_size: int, seed: int = 0) -> None:
    """A wav2vec2-like conv encoder with the shipped interface ([B,1,L], [B,1,E] -> [B,1,R], opset 14)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    layers = [(1, 512, 10, 5)] + [(512, 512, 3, 2)] * 4 + [(512, 512, 2, 2)] * 2
    current, length = "input", buffer_len
    for index, (cin, cout, kernel, stride) in enumerate(layers):
        w = rng.normal(0, 1 / np.sqrt(cin * kernel), (cout, cin, kernel)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"conv{index}"))
        nodes.append(helper.make_node("Conv", [current, f"conv{index}"], [f"c{index}"], strides=[stride]))
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        current, length = f"r{index}", (length - kernel) // stride + 1
    weights.append(numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"))
    nodes.append(helper.make_node("Reshape", [current, "flat_shape"], ["flat"]))
    nodes.append(helper.make_node("Reshape", ["emotion", "flat_shape"], ["emotion_flat"]))
    hidden = 1024
    dense = [("fc0", 512 * length, hidden), ("fc1", hidden + emotion_size, hidden), ("fc2", hidden, result_size)]
    for name, fan_in, fan_out in dense:
        weights.append(numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(fan_in), (fan_in, fan_out)).astype(np.float32), name))
        weights.append(numpy_helper.from_array(np.zeros(fan_out, np.float32), name + "_b"))
    nodes += [
        helper.make_node("Gemm", ["flat", "fc0", "fc0_b"], ["h0"]), helper.make_node("Relu", ["h0"], ["a0"]),
        helper.make_node("Concat", ["a0", "emotion_flat"], ["joined"], axis=1),
        helper.make_node("Gemm", ["joined", "fc1", "fc1_b"], ["h1"]), helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "fc2", "fc2_b"], ["h2"]),
    ]
    weights.append(numpy_helper.from_array(np.array([0, 1, result_size], np.int64), "out_shape"))
    nodes.append(helper.make_node("Reshape", ["h2", "out_shape"], ["result"]))
    graph = helper.make_graph(
        nodes, "a2f_bench_conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 1, buffer_len]),
         helper.make_tensor_value_info("emotion", TensorProto.FLOAT, ["batch_size", 1, emotion_size])],
        [helper.make_tensor_value_info("result", TensorProto.FLOAT, ["batch_size", 1, result_size])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def mark_sized_folder(root: Path, network: str, small: bool) -> Path:
    from talkbridge.core.motion import ARKIT_52, TONGUE_16
    from tests.audio2face_models import write_model_folder

    sizes = {"skin_shapes": 16, "tongue_shapes": 4, "skin_vertices": 600, "tongue_vertices": 60, "mask_vertices": 100} if small else MARK
    writer = None
    if network == "conv":
        writer = write_conv_network
    elif network == "nvidia":
        from functools import partial

        from bench.a2f_nvidia_network import write_nvidia_network

        writer = partial(write_nvidia_network, skin=sizes["skin_shapes"], tongue=sizes["tongue_shapes"], tiny=small)
    write_model_folder(root, skin_poses=ARKIT_52, tongue_poses=TONGUE_16, network=writer, network_scale=0.02, **sizes)
    return root


class Replay:
    """Stands in for the network: hands back results computed before, chunk after chunk."""

    def __init__(self, results: np.ndarray) -> None:
        self.results = results
        self.cursor = 0

    def run(self, windows: np.ndarray, emotions: np.ndarray) -> np.ndarray:
        if self.cursor >= len(self.results):
            self.cursor = 0  # a new clip
        out = self.results[self.cursor : self.cursor + len(windows)]
        self.cursor += len(windows)
        return out


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_network(network: str, args: argparse.Namespace) -> list[dict]:
    """All rows for one ``network.onnx``: a fresh Mark-sized folder, the engine loaded on it, then the timings."""
    from talkbridge.core.audio2face.emotion_input import network_emotions
    from talkbridge.core.audio2face.engine import Audio2FaceEngine
    from talkbridge.core.audio2face.network import A2FNetwork
    from talkbridge.core.audio2face.windows import audio_windows, target_samples
    from talkbridge.core.emotion import parse_emotion_text
    from talkbridge.core.engine import MotionRequest

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="a2f-bench-") as folder:
        start = time.perf_counter()
        root = mark_sized_folder(Path(folder) / "mark", network, args.smoke)
        print(f"model folder written in {time.perf_counter() - start:.1f} s ({network} network, "
              f"{(root / 'network.onnx').stat().st_size / 1e6:.1f} MB network.onnx)")
        start = time.perf_counter()
        engine = Audio2FaceEngine(root, device="cpu", threads=args.threads, batch=args.batch)
        load_s = time.perf_counter() - start
        info = engine.folder.info
        face = engine.face(None, 25)  # the default face at 25 fps: its solvers, prepared at load
        print(f"engine load (reading files, factoring the solve): {load_s:.2f} s; sizes: {info.buffer_len}-sample windows, "
              f"{info.num_shapes_skin}+{info.num_shapes_tongue}+{info.jaw_size}+{info.eyes_size} outputs, "
              f"{info.num_verts_skin} skin / {info.num_verts_tongue} tongue vertices, {len(engine.folder.skin.names)} skin poses "
              f"on {len(face.skin_solver.rows) // 3} mask vertices, {len(engine.folder.tongue.names)} tongue poses")
        rng = np.random.default_rng(0)
        samples = (0.1 * rng.normal(size=int(args.seconds * 16000))).astype(np.float32)
        plan = engine.plan(MotionRequest(audio=samples, options={"emotion": parse_emotion_text("joy=0.5")}))
        n = plan.n_frames
        windows = audio_windows(samples, target_samples(0, n, 25), info.buffer_len, info.buffer_ofs, 1.0)
        emotions = network_emotions(engine.folder.implicit_emotion, plan.emotion, info.explicit_emotions)
        batched = best_of(2, lambda: engine.network.run(windows, emotions))
        single_network = A2FNetwork(engine.folder.network_path, info, "cpu", args.threads, batch=1)
        count = min(n, args.single_frames)
        single = best_of(2, lambda: single_network.run(windows[:count], emotions[:count])) / count * n
        rows += [{"row": "network fps", "mode": f"batched ({args.batch} per call)", "value": n / batched},
                 {"row": "network fps", "mode": "one frame per call", "value": n / single}]

        def whole_clip() -> None:
            clip = engine.clip(plan)
            for first in range(0, n, 250):
                clip.chunk(first, min(n, first + 250))

        total = best_of(2, whole_clip)
        live = engine.network
        engine.network = Replay(live.run(windows, emotions))  # the same clip without the network: post-processing alone
        post = best_of(2, whole_clip)
        engine.network = live
        rows += [{"row": "post-processing", "unit": "ms/frame", "value": 1000 * post / n},
                 {"row": "engine real-time factor", "unit": "s per s of audio", "value": total / args.seconds},
                 {"row": "engine fps", "value": n / total},
                 {"row": "solver fallbacks to BVLS", "value": face.skin_solver.qp.fallbacks + face.tongue_solver.qp.fallbacks}]
    print(f"{network}: {n} frames ({args.seconds:g} s at 25 fps), {args.threads} threads")
    for row in rows:
        label = row["row"] + (f" [{row['mode']}]" if "mode" in row else "")
        print(f"  {label:<45} {row['value']:10.3f} {row.get('unit', '')}")
    print(f"  batched / one-per-call network speed-up: {rows[0]['value'] / rows[1]['value']:.2f}x")
    return [{"network": network, **row} for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the clip (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime and BLAS threads (default: %(default)s)")
    parser.add_argument("--network", choices=NETWORKS, action="append", dest="networks",
                        help="network.onnx to time, repeatable (each gets its own rows): nvidia, the Training "
                             "Framework's architecture (default); conv or linear, stand-ins")
    parser.add_argument("--batch", type=int, default=64, help="frames per network call when batched")
    parser.add_argument("--single-frames", type=int, default=50, help="frames timed one per call (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the bench runs, quote nothing")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    rows: list[dict] = []
    for network in args.networks or ["nvidia"]:
        rows += bench_network(network, args)
    print("JSON: " + json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic Audio2Face-3D regression model folders in the exact Hugging Face layout, for tests.

The folder has every file NVIDIA ships (``model.json`` naming ``network.trt``, ``network_info.json``,
``model_config.json``, the npz files with their real keys and dtypes, a ``network.onnx`` with the real
tensor names at opset 14) but tiny sizes. The network is linear, ``result = input . Wa + emotion . We +
bias``, so a test can compute what it must return; :class:`SyntheticModel` keeps those weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

SKIN_POSES = ("eyeBlinkLeft", "eyeLookDownLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft", "mouthSmileRight",
              "mouthPucker", "mouthFunnel", "tongueOut")
TONGUE_POSES = ("tongueTipUp", "tongueRollLeft", "tongueNarrow")
EXPLICIT = ("amazement", "anger", "cheekiness", "disgust", "fear", "grief", "joy", "outofbreath", "pain", "sadness")

CONFIG = {
    "input_strength": 1.3, "lower_face_smoothing": 0.0023 * 10, "upper_face_smoothing": 0.001 * 10,
    "lower_face_strength": 1.4, "upper_face_strength": 1.0, "face_mask_level": 0.6, "face_mask_softness": 0.0085 * 10,
    "skin_strength": 1.1, "blink_strength": 1.0, "eyelid_open_offset": 0.06, "lip_open_offset": -0.03,
    "tongue_strength": 1.5, "tongue_height_offset": 0.2, "tongue_depth_offset": 0.13, "lower_teeth_strength": 1.3,
    "lower_teeth_height_offset": -0.1, "lower_teeth_depth_offset": 0.05, "eyeballs_strength": 1.0,
    "saccade_strength": 0.9, "right_eye_rot_x_offset": 0.5, "right_eye_rot_y_offset": -2.0,
    "left_eye_rot_x_offset": -0.5, "left_eye_rot_y_offset": 2.0, "eye_saccade_seed": 7.0,
}


@dataclass
class SyntheticModel:
    """Where the folder is and the linear network's weights."""

    root: Path
    audio_weights: np.ndarray  # (buffer_len, R)
    emotion_weights: np.ndarray  # (E, R)
    bias: np.ndarray  # (R,)
    sizes: dict = field(default_factory=dict)

    def network(self, windows: np.ndarray, emotions: np.ndarray) -> np.ndarray:
        """What network.onnx returns for (T, L) windows and (T, E) emotion rows."""
        return (windows.astype(np.float64) @ self.audio_weights + emotions.astype(np.float64) @ self.emotion_weights + self.bias).astype(np.float32)


def write_onnx(path: Path, audio_weights: np.ndarray, emotion_weights: np.ndarray, bias: np.ndarray,
               fixed_batch: bool = False, names: tuple[str, str, str] = ("input", "emotion", "result")) -> None:
    """A linear network with the shipped interface: [B,1,L], [B,1,E] -> [B,1,R], opset 14."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    batch = 1 if fixed_batch else "batch_size"
    length, results = audio_weights.shape
    emotions = emotion_weights.shape[0]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [names[0], "Wa"], ["audio_part"]),
            helper.make_node("MatMul", [names[1], "We"], ["emotion_part"]),
            helper.make_node("Add", ["audio_part", "emotion_part"], ["summed"]),
            helper.make_node("Add", ["summed", "bias"], [names[2]]),
        ],
        "a2f_synthetic",
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [batch, 1, length]),
         helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [batch, 1, emotions])],
        [helper.make_tensor_value_info(names[2], TensorProto.FLOAT, [batch, 1, results])],
        initializer=[numpy_helper.from_array(audio_weights.astype(np.float32), "Wa"),
                     numpy_helper.from_array(emotion_weights.astype(np.float32), "We"),
                     numpy_helper.from_array(bias.astype(np.float32), "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _bs_config(count: int, **per_pose) -> dict:
    params = {
        "strengthL1regularization": 0.5, "strengthL2regularization": 0.5, "strengthTemporalSmoothing": 0.3,
        "strengthSymmetry": 100.0, "templateBBSize": 40.0, "numPoses": count,
        "bsSolveActivePoses": [1] * count, "bsSolveCancelPoses": [-1] * count, "bsSolveSymmetryPoses": [-1] * count,
        "bsWeightMultipliers": [1.0] * count, "bsWeightOffsets": [0.0] * count,
    }
    params.update(per_pose)
    return {"blendshape_params": params}


def write_model_folder(root: Path, *, skin_shapes: int = 4, tongue_shapes: int = 2, skin_vertices: int = 40,
                       tongue_vertices: int = 12, buffer_len: int = 8320, buffer_ofs: int = 4160, seed: int = 0,
                       fixed_batch: bool = False, network_scale: float = 1.0,
                       skin_poses: tuple[str, ...] = SKIN_POSES, tongue_poses: tuple[str, ...] = TONGUE_POSES,
                       mask_vertices: int | None = None,
                       network: Callable[[Path, int, int, int], None] | None = None) -> SyntheticModel:
    """Write a complete folder under ``root`` and return its description.

    ``network(path, buffer_len, emotion_size, result_size)``, when given, writes ``network.onnx``
    instead of the linear one (the bench's heavier stand-in); the returned weights then describe nothing.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    results = skin_shapes + tongue_shapes + 15 + 4
    emotions = 16 + len(EXPLICIT)
    info = {
        "id": {"type": "regression", "output": "geometry", "actor": "synthetic"},
        "params": {
            "explicit_emotions": list(EXPLICIT), "default_emotion": [0.0] * len(EXPLICIT), "implicit_emotion_len": 16,
            "num_shapes_skin": skin_shapes, "num_shapes_tongue": tongue_shapes, "num_verts_skin": skin_vertices,
            "num_verts_tongue": tongue_vertices, "result_jaw_size": 15, "result_eyes_size": 4,
        },
        "audio_params": {"buffer_len": buffer_len, "buffer_ofs": buffer_ofs, "samplerate": 16000},
    }
    (root / "network_info.json").write_text(json.dumps(info))
    (root / "model_config.json").write_text(json.dumps({"config": {**CONFIG, "source_shot": "shot_b", "source_frame": 2}}))
    (root / "model.json").write_text(json.dumps({
        "networkInfoPath": "network_info.json", "networkPath": "network.trt", "emotionDatabasePath": "implicit_emo_db.npz",
        "modelConfigPath": "model_config.json", "modelDataPath": "model_data.npz",
        "blendshapePaths": {"skin": {"config": "bs_skin_config.json", "data": "bs_skin.npz"},
                            "tongue": {"config": "bs_tongue_config.json", "data": "bs_tongue.npz"}},
    }))
    (root / "trt_info.json").write_text("{}")
    skin_mean = rng.normal(0, 1, (skin_vertices, 3)).astype(np.float32)
    skin_mean[:, 1] = np.linspace(-1.0, 1.0, skin_vertices)  # a face from chin to brow
    tongue_mean = rng.normal(0, 0.3, (tongue_vertices, 3)).astype(np.float32)
    np.savez(
        root / "model_data.npz",
        shapes_matrix_skin=rng.normal(0, 0.2, (skin_shapes, skin_vertices, 3)).astype(np.float32),
        shapes_mean_skin=skin_mean,
        lip_open_pose_delta=rng.normal(0, 0.1, (skin_vertices, 3)).astype(np.float32),
        eye_close_pose_delta=rng.normal(0, 0.1, (skin_vertices, 3)).astype(np.float32),
        shapes_matrix_tongue=rng.normal(0, 0.2, (tongue_shapes, tongue_vertices, 3)).astype(np.float32),
        shapes_mean_tongue=tongue_mean,
        neutral_jaw=rng.normal(0, 1, (5, 3)).astype(np.float32),
        saccade_rot_matrix=rng.normal(0, 1, (5000, 2)).astype(np.float32),
        neutral_skin=skin_mean,  # TF 1.0.1 writes extras; readers must ignore them
    )
    np.savez(
        root / "implicit_emo_db.npz",
        emo_db=rng.normal(0, 1, (12, 16)).astype(np.float32),
        emo_spec_names=np.array([b"shot_a", b"shot_b"]),
        emo_spec_start=np.array([0, 5], np.int32),
        emo_spec_size=np.array([5, 7], np.int32),
    )
    skin_arrays = {"poseNames": np.array([b"neutral", *(n.encode() for n in skin_poses)]), "neutral": skin_mean + 0.01}
    for name in skin_poses:
        skin_arrays[name] = rng.normal(0, 0.3, (skin_vertices, 3)).astype(np.float32)
    if mask_vertices is None:
        skin_arrays["frontalMask"] = np.arange(0, skin_vertices, 2, dtype=np.int32)[::-1].copy()
    else:
        skin_arrays["frontalMask"] = np.sort(rng.choice(skin_vertices, mask_vertices, replace=False)).astype(np.int32)
    np.savez(root / "bs_skin.npz", **skin_arrays)
    count = len(skin_poses)
    active = [1] * count
    active[skin_poses.index("eyeLookDownLeft")] = 0
    symmetry = [-1] * count
    symmetry[skin_poses.index("mouthSmileLeft")] = symmetry[skin_poses.index("mouthSmileRight")] = 0
    cancel = [-1] * count
    cancel[skin_poses.index("mouthPucker")] = cancel[skin_poses.index("mouthFunnel")] = 3
    multipliers = [1.0] * count
    multipliers[skin_poses.index("jawOpen")] = 1.5
    offsets = [0.0] * count
    offsets[skin_poses.index("eyeLookDownLeft")] = 0.05
    (root / "bs_skin_config.json").write_text(json.dumps(_bs_config(
        count, bsSolveActivePoses=active, bsSolveSymmetryPoses=symmetry, bsSolveCancelPoses=cancel,
        bsWeightMultipliers=multipliers, bsWeightOffsets=offsets)))
    tongue_arrays = {"poseNames": np.array([b"neutral", *(n.encode() for n in tongue_poses)]), "neutral": tongue_mean}
    for name in tongue_poses:
        tongue_arrays[name] = rng.normal(0, 0.3, (tongue_vertices, 3)).astype(np.float32)
    np.savez(root / "bs_tongue.npz", **tongue_arrays)
    (root / "bs_tongue_config.json").write_text(json.dumps(_bs_config(
        len(tongue_poses), strengthL1regularization=1.0, strengthL2regularization=3.5, strengthTemporalSmoothing=5.0,
        templateBBSize=20.0, bsWeightMultipliers=[2.0] + [1.0] * (len(tongue_poses) - 1),
        bsWeightOffsets=[0.0, 0.1] + [0.0] * (len(tongue_poses) - 2))))
    audio_weights = rng.normal(0, network_scale * 0.02, (buffer_len, results))
    emotion_weights = rng.normal(0, network_scale * 0.3, (emotions, results))
    bias = rng.normal(0, network_scale * 0.3, results)
    if network is None:
        write_onnx(root / "network.onnx", audio_weights, emotion_weights, bias, fixed_batch)
    else:
        network(root / "network.onnx", buffer_len, emotions, results)
    return SyntheticModel(root, audio_weights.astype(np.float32).astype(np.float64),
                          emotion_weights.astype(np.float32).astype(np.float64), bias.astype(np.float32).astype(np.float64),
                          {"skin_shapes": skin_shapes, "tongue_shapes": tongue_shapes})


def write_diffusion_onnx(path: Path, info, names: tuple[str, str] = ("window", "prediction")) -> Path:
    """prediction = mean over steps of the noise + sum(input_latents) + mean(window);
    output_latents = input_latents + mean(window). Closed form, and the state is visible in the output."""
    import onnx
    from onnx import TensorProto, helper

    s, frames = info.num_diffusion_steps, info.frames
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [names[0]], ["m"], axes=[1], keepdims=1),
            helper.make_node("Add", ["input_latents", "m"], ["output_latents"]),
            helper.make_node("ReduceSum", ["input_latents"], ["z"], keepdims=0),
            helper.make_node("ReduceMean", ["noise"], ["noise_mean"], axes=[1], keepdims=0),
            helper.make_node("Add", ["noise_mean", "z"], ["with_state"]),
            helper.make_node("Add", ["with_state", "m"], [names[1]]),
        ],
        "a2f_diffusion_synthetic",
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, ["batch", info.buffer_len]),
         helper.make_tensor_value_info("identity", TensorProto.FLOAT, ["batch", len(info.identities)]),
         helper.make_tensor_value_info("emotion", TensorProto.FLOAT, ["batch", info.center, len(info.emotions)]),
         helper.make_tensor_value_info("input_latents", TensorProto.FLOAT, [s, info.num_gru_layers, "batch", info.gru_latent_dim]),
         helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", s + 1, frames, info.dims])],
        [helper.make_tensor_value_info(names[1], TensorProto.FLOAT, ["batch", frames, info.dims]),
         helper.make_tensor_value_info("output_latents", TensorProto.FLOAT, [s, info.num_gru_layers, "batch", info.gru_latent_dim])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


DIFFUSION_IDENTITIES = ("Claire", "James", "Mark")


def write_diffusion_folder(root: Path, *, skin_vertices: int = 40, tongue_vertices: int = 12, seed: int = 0) -> Path:
    """A v3.0 diffusion folder in the Hugging Face layout (SPEC section 8), tiny sizes, 2 GRU latents.

    Per identity: ``model_config_<Actor>.json``, ``model_data_<Actor>.npz`` (neutrals, no PCA) and
    ``bs_skin_<Actor>.npz``/``bs_tongue_<Actor>.npz`` with ``bs_skin_config_<Actor>.json``/
    ``bs_tongue_config_<Actor>.json`` (the names NVIDIA's Training Framework deploys, ``deploy.py``);
    ``model.json`` lists them in ``network_info.json``'s identity order. With ``trt_info.json`` the
    folder holds exactly the catalog's ``audio2face-v3`` files. The network is :func:`write_diffusion_onnx`'s closed form.
    """
    from talkbridge.core.audio2face.diffusion import DiffusionInfo

    write_model_folder(root, skin_vertices=skin_vertices, tongue_vertices=tongue_vertices, seed=seed)
    for name in ("model_data.npz", "implicit_emo_db.npz", "model_config.json", "network.onnx"):
        (root / name).unlink()
    rng = np.random.default_rng(seed + 1)
    dims = 3 * skin_vertices + 3 * tongue_vertices + 15 + 4
    info = {
        "id": {"type": "diffusion", "output": "geometry"},
        "params": {
            "emotions": list(EXPLICIT), "default_emotion": [0.0] * len(EXPLICIT), "identities": list(DIFFUSION_IDENTITIES),
            "skin_size": 3 * skin_vertices, "tongue_size": 3 * tongue_vertices, "jaw_size": 15, "eyes_size": 4,
            "num_diffusion_steps": 2, "num_gru_layers": 2, "gru_latent_dim": 4, "num_frames_left_truncate": 15,
            "num_frames_right_truncate": 15, "num_frames_center": 30,
        },
        "audio_params": {"buffer_len": 16000, "padding_left": 16000, "padding_right": 16000, "samplerate": 16000},
    }
    (root / "network_info.json").write_text(json.dumps(info))
    configs, datas, shapes = [], [], []
    skin_mean = np.load(root / "bs_skin.npz")["neutral"] - 0.01
    for actor in DIFFUSION_IDENTITIES:
        (root / f"model_config_{actor}.json").write_text(json.dumps({"config": CONFIG}))
        np.savez(
            root / f"model_data_{actor}.npz",
            neutral_skin=skin_mean, neutral_tongue=np.load(root / "bs_tongue.npz")["neutral"],
            neutral_jaw=rng.normal(0, 1, (5, 3)).astype(np.float32),
            lip_open_pose_delta=rng.normal(0, 0.1, (skin_vertices, 3)).astype(np.float32),
            eye_close_pose_delta=rng.normal(0, 0.1, (skin_vertices, 3)).astype(np.float32),
            saccade_rot_matrix=rng.normal(0, 1, (5000, 2)).astype(np.float32),
        )
        entry = {}
        for part in ("skin", "tongue"):
            (root / f"bs_{part}_{actor}.npz").write_bytes((root / f"bs_{part}.npz").read_bytes())
            (root / f"bs_{part}_config_{actor}.json").write_text((root / f"bs_{part}_config.json").read_text())
            entry[part] = {"config": f"bs_{part}_config_{actor}.json", "data": f"bs_{part}_{actor}.npz"}
        configs.append(f"model_config_{actor}.json")
        datas.append(f"model_data_{actor}.npz")
        shapes.append(entry)
    for part in ("skin", "tongue"):
        (root / f"bs_{part}.npz").unlink()
        (root / f"bs_{part}_config.json").unlink()
    (root / "model.json").write_text(json.dumps({
        "networkInfoPath": "network_info.json", "networkPath": "network.trt",
        "modelConfigPaths": configs, "modelDataPaths": datas, "blendshapePaths": shapes,
    }))
    write_diffusion_onnx(root / "network.onnx", DiffusionInfo(identities=DIFFUSION_IDENTITIES, emotions=EXPLICIT,
                                                                dims=dims, gru_latent_dim=4))
    return root

"""The files of an Audio2Face-3D model folder, read and checked.

A regression folder as NVIDIA ships it on Hugging Face holds ``model.json`` (paths of the other
files), ``network_info.json`` (sizes and emotion names), ``model_config.json`` (animator settings),
``model_data.npz`` (PCA bases, neutrals, jaw points, saccade table), ``implicit_emo_db.npz`` and the
blendshape files named in ``model.json``. Every problem is reported as a :class:`CheckpointError`
naming the file and the key, because a wrong file here would otherwise surface as a shape error deep
in the post-processing.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Mapping

import numpy as np

from talkbridge.core.errors import CheckpointError

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
ONNX_NAME = "network.onnx"
MAX_JSON_BYTES = 16 * 2**20


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file names itself."""
    if not path.is_file():
        raise CheckpointError("file not found (the model folder is incomplete)", path)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError("is too large to be an Audio2Face-3D settings file", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"is not valid JSON ({error})", path) from None
    if not isinstance(data, dict):
        raise CheckpointError("must hold a JSON object", path)
    return data


def _get(data: Mapping[str, Any], dotted: str, path: Path, kind: type | tuple[type, ...]) -> Any:
    """``data[a][b]...`` for ``dotted`` = ``a.b...``, of type ``kind``, or an error naming the key."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise CheckpointError(f"lacks the key {dotted!r}", path)
        value = value[part]
    if kind in (int, float) or kind == (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(f"key {dotted!r} must be a number, got {value!r}", path)
        if kind is int:
            if float(value) != int(value):
                raise CheckpointError(f"key {dotted!r} must be a whole number, got {value!r}", path)
            return int(value)
        return float(value)
    if not isinstance(value, kind):
        raise CheckpointError(f"key {dotted!r} has the wrong type ({type(value).__name__})", path)
    return value


class NpzFile:
    """An ``.npz`` read without pickle; :meth:`array` names the file and key in every error."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise CheckpointError("file not found (the model folder is incomplete)", path)
        self.path = path
        try:
            with np.load(path, allow_pickle=False) as archive:
                self._arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise CheckpointError(f"is not a readable .npz archive ({error})", path) from None

    def keys(self) -> list[str]:
        return list(self._arrays)

    def has(self, key: str) -> bool:
        return key in self._arrays

    def array(self, key: str, shape: tuple[int, ...] | None = None, kind: str = "float") -> np.ndarray:
        """Array ``key``: ``kind`` float (as float32), int (as int64) or bytes (as str); ``shape``
        when given is checked (a -1 entry is free)."""
        if key not in self._arrays:
            raise CheckpointError(f"lacks the array {key!r} (it has: {', '.join(sorted(self._arrays)) or 'none'})", self.path)
        value = self._arrays[key]
        if kind == "float":
            if value.dtype.kind != "f":
                raise CheckpointError(f"array {key!r} must hold floats, got {value.dtype}", self.path)
            value = value.astype(np.float32, copy=False)
        elif kind == "int":
            if value.dtype.kind not in "iu":
                raise CheckpointError(f"array {key!r} must hold integers, got {value.dtype}", self.path)
            value = value.astype(np.int64, copy=False)
        elif kind == "bytes":
            if value.dtype.kind not in "SU":
                raise CheckpointError(f"array {key!r} must hold strings, got {value.dtype}", self.path)
            value = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)])
        if shape is not None:
            fixed = [int(d) for d in shape]
            known = int(np.prod([d for d in fixed if d >= 0]))
            if -1 in fixed and known > 0 and value.size % known == 0 and value.size > 0:
                fixed[fixed.index(-1)] = value.size // known
            if -1 in fixed or int(np.prod(fixed)) != value.size:
                want = "x".join("N" if d < 0 else str(d) for d in shape) or "a scalar"
                raise CheckpointError(f"array {key!r} has shape {value.shape}, expected {want}", self.path)
            return value.reshape(fixed)  # the SDK reads raw row-major floats, so only the size matters
        return value


@dataclass(frozen=True)
class NetworkInfo:
    """``network_info.json``: the network's sizes and its explicit emotions, in input order."""

    actor: str
    explicit_emotions: tuple[str, ...]
    default_emotion: tuple[float, ...]
    implicit_emotion_len: int
    num_shapes_skin: int
    num_shapes_tongue: int
    num_verts_skin: int
    num_verts_tongue: int
    jaw_size: int
    eyes_size: int
    buffer_len: int
    buffer_ofs: int
    samplerate: int

    @property
    def emotion_size(self) -> int:
        return self.implicit_emotion_len + len(self.explicit_emotions)

    @property
    def result_size(self) -> int:
        return self.num_shapes_skin + self.num_shapes_tongue + self.jaw_size + self.eyes_size

    @classmethod
    def read(cls, path: Path) -> "NetworkInfo":
        data = read_json(path)
        kind = _get(data, "id.type", path, str)
        if kind == "diffusion":
            raise CheckpointError(
                "is an Audio2Face-3D v3.0 diffusion model; this talkbridge runs the v2.3 regression models "
                "(Mark, Claire, James) only", path,
            )
        if kind != "regression" or _get(data, "id.output", path, str) != "geometry":
            raise CheckpointError(f"id.type/id.output must be 'regression'/'geometry', got {kind!r}", path)
        names = tuple(str(n) for n in _get(data, "params.explicit_emotions", path, list))
        default = tuple(float(v) for v in _get(data, "params.default_emotion", path, list))
        if len(default) != len(names):
            raise CheckpointError(
                f"key 'params.default_emotion' has {len(default)} values for {len(names)} explicit emotions", path
            )
        info = cls(
            actor=str(data.get("id", {}).get("actor", "")),
            explicit_emotions=names,
            default_emotion=default,
            implicit_emotion_len=_get(data, "params.implicit_emotion_len", path, int),
            num_shapes_skin=_get(data, "params.num_shapes_skin", path, int),
            num_shapes_tongue=_get(data, "params.num_shapes_tongue", path, int),
            num_verts_skin=_get(data, "params.num_verts_skin", path, int),
            num_verts_tongue=_get(data, "params.num_verts_tongue", path, int),
            jaw_size=_get(data, "params.result_jaw_size", path, int),
            eyes_size=_get(data, "params.result_eyes_size", path, int),
            buffer_len=_get(data, "audio_params.buffer_len", path, int),
            buffer_ofs=_get(data, "audio_params.buffer_ofs", path, int),
            samplerate=_get(data, "audio_params.samplerate", path, int),
        )
        if info.jaw_size != 15 or info.eyes_size != 4:
            raise CheckpointError(f"result_jaw_size/result_eyes_size must be 15/4, got {info.jaw_size}/{info.eyes_size}", path)
        if not 0 <= info.buffer_ofs < info.buffer_len:
            raise CheckpointError(f"audio_params.buffer_ofs {info.buffer_ofs} must lie inside buffer_len {info.buffer_len}", path)
        return info


ANIMATOR_RANGES: dict[str, tuple[float, float] | None] = {
    "input_strength": None,
    "lower_face_smoothing": (0.0, 0.1),
    "upper_face_smoothing": (0.0, 0.1),
    "lower_face_strength": (0.0, 2.0),
    "upper_face_strength": (0.0, 2.0),
    "face_mask_level": (0.0, 1.0),
    "face_mask_softness": (0.001, 0.5),
    "skin_strength": (0.0, 2.0),
    "blink_strength": (0.0, 2.0),
    "eyelid_open_offset": (-1.0, 1.0),
    "lip_open_offset": (-0.2, 0.2),
    "tongue_strength": (0.0, 3.0),
    "tongue_height_offset": (-3.0, 3.0),
    "tongue_depth_offset": (-3.0, 3.0),
    "lower_teeth_strength": (0.0, 2.0),
    "lower_teeth_height_offset": (-3.0, 3.0),
    "lower_teeth_depth_offset": (-3.0, 3.0),
    "eyeballs_strength": (0.0, 2.0),
    "saccade_strength": (0.0, 2.0),
    "right_eye_rot_x_offset": (-10.0, 10.0),
    "right_eye_rot_y_offset": (-10.0, 10.0),
    "left_eye_rot_x_offset": (-10.0, 10.0),
    "left_eye_rot_y_offset": (-10.0, 10.0),
    "eye_saccade_seed": (0.0, 4999.0),
}
"""The animator keys of ``model_config.json`` with the SDK validator's ranges (None: not checked)."""


@dataclass(frozen=True)
class AnimatorConfig:
    """``model_config.json``'s ``config`` object: the animator settings plus the implicit emotion's source."""

    values: dict[str, float]
    source_shot: str | None
    source_frame: int | None

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    @classmethod
    def read(cls, path: Path) -> "AnimatorConfig":
        data = read_json(path)
        config = _get(data, "config", path, dict)
        values = {}
        for key, bounds in ANIMATOR_RANGES.items():
            value = _get(config, key, path, (int, float))
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise CheckpointError(f"key 'config.{key}' = {value:g} is outside [{bounds[0]:g}, {bounds[1]:g}]", path)
            values[key] = float(value)
        shot = config.get("source_shot")
        frame = config.get("source_frame")
        if shot is not None and not isinstance(shot, str):
            raise CheckpointError("key 'config.source_shot' must be a shot name", path)
        if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
            raise CheckpointError("key 'config.source_frame' must be a whole number >= 0", path)
        return cls(values, shot, frame)


@dataclass(frozen=True)
class ModelData:
    """``model_data.npz``: PCA bases (rows = coefficients, flattened xyz), neutrals, jaw and saccades."""

    skin_basis: np.ndarray | None  # (S, 3V); None: the network gives vertex deltas (v3.0 diffusion)
    skin_mean: np.ndarray  # (V, 3)
    lip_open_delta: np.ndarray  # (V, 3)
    eye_close_delta: np.ndarray  # (V, 3)
    tongue_basis: np.ndarray | None  # (K, 3W); None as for skin_basis
    tongue_mean: np.ndarray  # (W, 3)
    neutral_jaw: np.ndarray  # (5, 3)
    saccades: np.ndarray  # (R, 2)

    @classmethod
    def read(cls, path: Path, info: NetworkInfo) -> "ModelData":
        npz = NpzFile(path)
        v, w = info.num_verts_skin, info.num_verts_tongue
        return cls(
            skin_basis=npz.array("shapes_matrix_skin", (info.num_shapes_skin, 3 * v)),
            skin_mean=npz.array("shapes_mean_skin", (v, 3)),
            lip_open_delta=npz.array("lip_open_pose_delta", (v, 3)),
            eye_close_delta=npz.array("eye_close_pose_delta", (v, 3)),
            tongue_basis=npz.array("shapes_matrix_tongue", (info.num_shapes_tongue, 3 * w)),
            tongue_mean=npz.array("shapes_mean_tongue", (w, 3)),
            neutral_jaw=npz.array("neutral_jaw", (5, 3)),
            saccades=npz.array("saccade_rot_matrix", (-1, 2)),
        )


@dataclass(frozen=True)
class EmotionDatabase:
    """``implicit_emo_db.npz``: implicit emotion vectors, grouped in named shots."""

    vectors: np.ndarray  # (N, implicit_len)
    shot_names: tuple[str, ...]
    shot_starts: np.ndarray
    shot_sizes: np.ndarray
    path: Path

    @classmethod
    def read(cls, path: Path, implicit_len: int) -> "EmotionDatabase":
        npz = NpzFile(path)
        vectors = npz.array("emo_db", (-1, implicit_len))
        names = npz.array("emo_spec_names", kind="bytes")
        starts = npz.array("emo_spec_start", kind="int").reshape(-1)
        sizes = npz.array("emo_spec_size", kind="int").reshape(-1)
        if not len(names) == len(starts) == len(sizes) or len(names) == 0:
            raise CheckpointError("arrays 'emo_spec_names', 'emo_spec_start', 'emo_spec_size' must have one entry per shot", path)
        if np.any(starts < 0) or np.any(sizes < 1) or np.any(starts + sizes > len(vectors)):
            raise CheckpointError("a shot in 'emo_spec_start'/'emo_spec_size' runs outside 'emo_db'", path)
        return cls(vectors, tuple(str(n) for n in names), starts, sizes, path)

    def row(self, shot: str | None, frame: int | None) -> np.ndarray:
        """The implicit emotion of ``shot``'s ``frame`` (missing: the first shot, frame 0, as NVIDIA's
        training framework fills them)."""
        index = 0 if shot is None else (self.shot_names.index(shot) if shot in self.shot_names else -1)
        if index < 0:
            raise CheckpointError(f"has no shot {shot!r} (named by model_config.json's 'source_shot')", self.path)
        frame = 0 if frame is None else int(frame)
        if frame >= int(self.shot_sizes[index]):
            raise CheckpointError(
                f"shot {self.shot_names[index]!r} has {int(self.shot_sizes[index])} frames; 'source_frame' {frame} is past its end",
                self.path,
            )
        return self.vectors[int(self.shot_starts[index]) + frame].astype(np.float32)


SOLVER_KEYS = ("strengthL1regularization", "strengthL2regularization", "strengthTemporalSmoothing", "strengthSymmetry")
DEFAULT_TEMPLATE_BB_SIZE = 54.7


@dataclass(frozen=True)
class BlendshapeSet:
    """A ``bs_*.npz`` with its ``bs_*_config.json``: poses to solve for and the solver's settings."""

    names: tuple[str, ...]
    neutral: np.ndarray  # (V, 3)
    deltas: np.ndarray  # (P, V, 3)
    mask: np.ndarray | None  # vertex indices the solve uses, or None for all
    l1: float
    l2: float
    temporal: float
    symmetry: float
    template_bb_size: float
    active: np.ndarray  # (P,) bool
    cancel_ids: np.ndarray  # (P,) int, -1 none
    symmetry_ids: np.ndarray
    multipliers: np.ndarray
    offsets: np.ndarray

    @classmethod
    def read(cls, data_path: Path, config_path: Path, n_vertices: int) -> "BlendshapeSet":
        npz = NpzFile(data_path)
        names = tuple(npz.array("poseNames", kind="bytes"))
        if not names or names[0] != "neutral":
            raise CheckpointError("array 'poseNames' must start with 'neutral'", data_path)
        neutral = npz.array("neutral", (n_vertices, 3))
        poses = names[1:]
        deltas = np.stack([npz.array(name, (n_vertices, 3)) for name in poses]) if poses else np.zeros((0, n_vertices, 3), np.float32)
        mask = None
        if npz.has("frontalMask"):
            mask = npz.array("frontalMask", kind="int").reshape(-1)
            if mask.size == 0 or mask.min() < 0 or mask.max() >= n_vertices:
                raise CheckpointError(f"array 'frontalMask' must list vertex indices within 0..{n_vertices - 1}", data_path)
        params = _get(read_json(config_path), "blendshape_params", config_path, dict)
        count = _get(params, "numPoses", config_path, int)
        if count != len(poses):
            raise CheckpointError(f"key 'numPoses' is {count} but {data_path.name} has {len(poses)} poses", config_path)

        def per_pose(key: str, kind: type) -> np.ndarray:
            values = _get(params, key, config_path, list)
            if len(values) != count or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise CheckpointError(f"key {key!r} must list {count} numbers, one per pose", config_path)
            return np.asarray(values, np.float64 if kind is float else np.int64)

        active = per_pose("bsSolveActivePoses", int) != 0
        if not active.any():
            raise CheckpointError("key 'bsSolveActivePoses' leaves no pose active", config_path)
        cancel = per_pose("bsSolveCancelPoses", int)
        symmetry = per_pose("bsSolveSymmetryPoses", int)
        for key, ids in (("bsSolveCancelPoses", cancel), ("bsSolveSymmetryPoses", symmetry)):
            for pair_id in set(ids[ids >= 0].tolist()):
                if int(np.sum(ids == pair_id)) != 2:
                    raise CheckpointError(f"key {key!r}: pair id {pair_id} must occur exactly twice", config_path)
        template = params.get("templateBBSize", DEFAULT_TEMPLATE_BB_SIZE)
        if isinstance(template, bool) or not isinstance(template, (int, float)) or template <= 0:
            raise CheckpointError("key 'templateBBSize' must be a positive number", config_path)
        l1, l2, lt, ls = (_get(params, key, config_path, (int, float)) for key in SOLVER_KEYS)
        return cls(
            names=poses, neutral=neutral, deltas=deltas, mask=mask, l1=l1, l2=l2, temporal=lt, symmetry=ls,
            template_bb_size=float(template), active=active, cancel_ids=cancel, symmetry_ids=symmetry,
            multipliers=per_pose("bsWeightMultipliers", float), offsets=per_pose("bsWeightOffsets", float),
        )


@dataclass(frozen=True)
class ModelFolder:
    """Everything a regression model folder holds, loaded and cross-checked."""

    root: Path
    network_path: Path
    info: NetworkInfo
    config: AnimatorConfig
    data: ModelData
    emotions: EmotionDatabase
    skin: BlendshapeSet
    tongue: BlendshapeSet

    @property
    def implicit_emotion(self) -> np.ndarray:
        """The clip-constant implicit emotion the SDK picks once per executor."""
        return self.emotions.row(self.config.source_shot, self.config.source_frame)


def find_model_json(path: str | Path) -> Path:
    """``model.json`` of a folder (or the file itself); a folder without one says so."""
    path = Path(path)
    if path.is_file():
        return path
    candidate = path / MODEL_JSON
    if not candidate.is_file():
        raise CheckpointError(f"no {MODEL_JSON} here: pass an Audio2Face-3D model folder (Hugging Face layout)", path)
    return candidate


def folder_file(model_json: Path, value: Any, key: str) -> Path:
    """The file that ``value``, a name under ``key`` in ``model_json``, names inside the model folder.

    Names are relative and never leave the folder (no absolute path, drive or ``..``): a model folder
    from anywhere must not make talkbridge read files the user did not name. The check is on the
    names, not on resolved paths, because Hugging Face's cache links snapshot files to its blobs.
    """
    if not isinstance(value, str) or not value.strip():
        raise CheckpointError(f"key {key!r} must name a file, got {value!r}", model_json)
    relative = PurePosixPath(value.replace("\\", "/"))
    if relative.is_absolute() or PureWindowsPath(value).drive or ".." in relative.parts:
        raise CheckpointError(f"key {key!r} names {value!r}, outside the model folder (names are relative to it)", model_json)
    return model_json.parent / relative


def _resolve(model_json: Path, data: Mapping[str, Any], key: str) -> Path:
    return folder_file(model_json, _get(data, key, model_json, str), key)


def network_file(model_json: Path, data: Mapping[str, Any]) -> Path:
    """The ONNX network: ``networkPath`` names a TensorRT engine NVIDIA never ships, so a ``.trt`` or
    missing path falls back to ``network.onnx`` in the same folder."""
    named = _resolve(model_json, data, "networkPath")
    if named.suffix.lower() == ".onnx" and named.is_file():
        return named
    beside = named.parent / ONNX_NAME
    if beside.is_file():
        if named.suffix.lower() == ".trt":
            log.debug("model.json names %s (TensorRT); using %s", named.name, beside)
        return beside
    raise CheckpointError(f"key 'networkPath' names {named.name}, and no {ONNX_NAME} lies beside it in {named.parent}", model_json)


def load_model_folder(path: str | Path) -> ModelFolder:
    """Read and check the whole folder; errors name the file and the key that is wrong."""
    model_json = find_model_json(path)
    data = read_json(model_json)
    info = NetworkInfo.read(_resolve(model_json, data, "networkInfoPath"))
    config = AnimatorConfig.read(_resolve(model_json, data, "modelConfigPath"))
    model_data = ModelData.read(_resolve(model_json, data, "modelDataPath"), info)
    emotions = EmotionDatabase.read(_resolve(model_json, data, "emotionDatabasePath"), info.implicit_emotion_len)
    skin = BlendshapeSet.read(
        _resolve(model_json, data, "blendshapePaths.skin.data"), _resolve(model_json, data, "blendshapePaths.skin.config"),
        info.num_verts_skin,
    )
    tongue = BlendshapeSet.read(
        _resolve(model_json, data, "blendshapePaths.tongue.data"), _resolve(model_json, data, "blendshapePaths.tongue.config"),
        info.num_verts_tongue,
    )
    folder = ModelFolder(model_json.parent, network_file(model_json, data), info, config, model_data, emotions, skin, tongue)
    folder.implicit_emotion  # a bad source_shot/source_frame fails here, before any audio is read
    return folder

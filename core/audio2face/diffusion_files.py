"""The files of an Audio2Face-3D v3.0 diffusion folder, read and checked (SPEC section 8).

One diffusion network serves several identities (Claire, James, Mark). ``model.json`` therefore
lists the animator settings, the model data and the blendshapes once per identity
(``modelConfigPaths``, ``modelDataPaths``, ``blendshapePaths``), in the order of
``network_info.json``'s ``params.identities``. ``model_data_<Actor>.npz`` has neutrals instead of
PCA bases, because the network predicts vertex deltas directly. Every problem is a
:class:`CheckpointError` naming the file and the key, as for the regression folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from talkbridge.core.audio2face.diffusion import DiffusionInfo
from talkbridge.core.audio2face.files import (
    AnimatorConfig, BlendshapeSet, ModelData, NpzFile, _get, find_model_json, folder_file, network_file, read_json,
)
from talkbridge.core.errors import CheckpointError

DIFFUSION = "diffusion"


def _whole(params: Mapping[str, Any], key: str, path: Path, prefix: str) -> int:
    value = _get(params, key, path, int)
    if value < 0:
        raise CheckpointError(f"key '{prefix}{key}' must be >= 0, got {value}", path)
    return value


@dataclass(frozen=True)
class DiffusionSizes:
    """The output layout of ``prediction``: skin, tongue, jaw and eyes, as flattened values."""

    skin: int
    tongue: int
    jaw: int
    eyes: int

    @property
    def total(self) -> int:
        return self.skin + self.tongue + self.jaw + self.eyes


def read_diffusion_info(path: Path) -> tuple[DiffusionInfo, DiffusionSizes, tuple[float, ...]]:
    """``network_info.json`` of a diffusion model: (runner info, output sizes, default emotion)."""
    data = read_json(path)
    kind = _get(data, "id.type", path, str)
    if kind != DIFFUSION:
        raise CheckpointError(f"key 'id.type' must be 'diffusion' for this folder, got {kind!r}", path)
    params = _get(data, "params", path, dict)
    audio = _get(data, "audio_params", path, dict)
    emotions = tuple(str(n) for n in _get(params, "emotions", path, list))
    identities = tuple(str(n) for n in _get(params, "identities", path, list))
    if not identities:
        raise CheckpointError("key 'params.identities' lists no identity", path)
    default = tuple(float(v) for v in _get(params, "default_emotion", path, list))
    if len(default) != len(emotions):
        raise CheckpointError(f"key 'params.default_emotion' has {len(default)} values for {len(emotions)} emotions", path)
    sizes = DiffusionSizes(*(_whole(params, key, path, "params.") for key in ("skin_size", "tongue_size", "jaw_size", "eyes_size")))
    if sizes.jaw != 15 or sizes.eyes != 4:
        raise CheckpointError(f"keys 'params.jaw_size'/'params.eyes_size' must be 15/4, got {sizes.jaw}/{sizes.eyes}", path)
    for key, size in (("skin_size", sizes.skin), ("tongue_size", sizes.tongue)):
        if size == 0 or size % 3:
            raise CheckpointError(f"key 'params.{key}' = {size} must be a positive multiple of 3 (xyz per vertex)", path)
    info = DiffusionInfo(
        identities=identities, emotions=emotions, dims=sizes.total,
        num_diffusion_steps=_whole(params, "num_diffusion_steps", path, "params."),
        num_gru_layers=_whole(params, "num_gru_layers", path, "params."),
        gru_latent_dim=_whole(params, "gru_latent_dim", path, "params."),
        left=_whole(params, "num_frames_left_truncate", path, "params."),
        right=_whole(params, "num_frames_right_truncate", path, "params."),
        center=_whole(params, "num_frames_center", path, "params."),
        buffer_len=_whole(audio, "buffer_len", path, "audio_params."),
        padding_left=_whole(audio, "padding_left", path, "audio_params."),
        samplerate=_whole(audio, "samplerate", path, "audio_params."),
    )
    if info.center == 0 or info.buffer_len == 0 or info.samplerate == 0:
        raise CheckpointError("keys 'params.num_frames_center', 'audio_params.buffer_len' and 'audio_params.samplerate' must be > 0", path)
    return info, sizes, default


def read_diffusion_data(path: Path, sizes: DiffusionSizes) -> ModelData:
    """``model_data_<Actor>.npz``: neutrals, pose deltas, jaw points and saccades (no PCA bases)."""
    npz = NpzFile(path)
    v, w = sizes.skin // 3, sizes.tongue // 3
    return ModelData(
        skin_basis=None,
        skin_mean=npz.array("neutral_skin", (v, 3)),
        lip_open_delta=npz.array("lip_open_pose_delta", (v, 3)),
        eye_close_delta=npz.array("eye_close_pose_delta", (v, 3)),
        tongue_basis=None,
        tongue_mean=npz.array("neutral_tongue", (w, 3)),
        neutral_jaw=npz.array("neutral_jaw", (5, 3)),
        saccades=npz.array("saccade_rot_matrix", (-1, 2)),
    )


@dataclass(frozen=True)
class DiffusionIdentity:
    """One identity's animator settings, model data and blendshapes."""

    name: str
    config: AnimatorConfig
    data: ModelData
    skin: BlendshapeSet
    tongue: BlendshapeSet


@dataclass(frozen=True)
class DiffusionFolder:
    """A v3.0 diffusion folder: one network and its identities."""

    root: Path
    network_path: Path
    info: DiffusionInfo
    sizes: DiffusionSizes
    default_emotion: tuple[float, ...]
    identities: dict[str, DiffusionIdentity]


def is_diffusion_folder(path: str | Path) -> bool:
    """Whether ``path``'s ``network_info.json`` says ``id.type`` = diffusion (False when unreadable:
    the regression loader then reports the problem)."""
    try:
        model_json = find_model_json(path)
        data = read_json(model_json)
        info_path = model_json.parent / str(data.get("networkInfoPath", "network_info.json"))
        return read_json(info_path).get("id", {}).get("type") == DIFFUSION
    except (CheckpointError, AttributeError):
        return False


def _per_identity(model_json: Path, data: Mapping[str, Any], key: str, count: int) -> list[Any]:
    values = _get(data, key, model_json, list)
    if len(values) != count:
        raise CheckpointError(f"key {key!r} has {len(values)} entries for {count} identities (params.identities)", model_json)
    return values


def _path(model_json: Path, value: Any, key: str) -> Path:
    return folder_file(model_json, value, key)


def load_diffusion_folder(path: str | Path, identity: str | None = None) -> DiffusionFolder:
    """Read and check the folder; only ``identity`` (default: the first listed) has its data read, as a
    job animates one face and each identity's blendshapes are large."""
    model_json = find_model_json(path)
    data = read_json(model_json)
    info_value = _get(data, "networkInfoPath", model_json, str)
    info, sizes, default = read_diffusion_info(_path(model_json, info_value, "networkInfoPath"))
    count = len(info.identities)
    configs = _per_identity(model_json, data, "modelConfigPaths", count)
    datas = _per_identity(model_json, data, "modelDataPaths", count)
    blendshapes = _per_identity(model_json, data, "blendshapePaths", count)
    wanted = (info.identities[0] if identity is None else identity,)
    loaded = {}
    for name in wanted:
        if name not in info.identities:
            raise CheckpointError(f"has no identity {name!r}; it has: {', '.join(info.identities)}", model_json)
        i = info.identities.index(name)
        entry = blendshapes[i]
        if not isinstance(entry, Mapping):
            raise CheckpointError(f"key 'blendshapePaths' entry {i} ({name}) must be an object with skin and tongue", model_json)
        key = f"blendshapePaths[{i}]"
        skin = BlendshapeSet.read(_path(model_json, _get(entry, "skin.data", model_json, str), key),
                                  _path(model_json, _get(entry, "skin.config", model_json, str), key), sizes.skin // 3)
        tongue = BlendshapeSet.read(_path(model_json, _get(entry, "tongue.data", model_json, str), key),
                                    _path(model_json, _get(entry, "tongue.config", model_json, str), key), sizes.tongue // 3)
        loaded[name] = DiffusionIdentity(
            name=name,
            config=AnimatorConfig.read(_path(model_json, configs[i], "modelConfigPaths")),
            data=read_diffusion_data(_path(model_json, datas[i], "modelDataPaths"), sizes),
            skin=skin, tongue=tongue,
        )
    return DiffusionFolder(model_json.parent, network_file(model_json, data), info, sizes, default, loaded)

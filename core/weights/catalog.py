"""Every weight file talkbridge knows: where it comes from, how big it is, and its sha256.

Groups:

* ``sadtalker``: the SadTalker v0.0.2-rc release, which is all current inference needs (the combined
  safetensors for 256 or 512 px plus the two MappingNet files).
* ``sadtalker-legacy``: the separate ``.pth`` files of the v0.0.2 release, for the "old version" path.
* ``face-alignment``: the face detector and landmark network the ``face-alignment`` package fetches
  into ``$TORCH_HOME/hub/checkpoints`` at run time; the store can pre-seed that cache.
* ``gfpgan``: the optional face enhancer.
* ``audio2face-mark`` / ``-claire`` / ``-james``: NVIDIA's Audio2Face-3D regression models (v2.3 Mark,
  v2.3.1 Claire and James), each folder as Hugging Face serves it; ``audio2face-v3``: the v3.0
  diffusion model (one network, identities Claire, James and Mark; CUDA, or the CPU when forced); ``audio2emotion``: the optional
  Audio2Emotion v2.2 model for ``--emotion auto`` (its licence allows it only together with Audio2Face). The repositories
  are gated: accept the licence on Hugging Face and set ``HF_TOKEN``.

Sizes and hashes are recorded where they are publicly known; files without them are checked for
presence and readability only, and ``verify`` says so. A JSON catalog of the same fields can replace
this one (``--catalog``), e.g. for a studio's internal mirror.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from talkbridge.core.errors import InputError

RC_RELEASE = "https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/"
V002_RELEASE = "https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2/"
HF_MIRROR = "https://huggingface.co/vinthony/SadTalker-V002rc/resolve/main/"
FAN_BASE = "https://www.adrianbulat.com/downloads/python-fan/"

CHECKPOINTS = "checkpoints"  # the official SadTalker folder name: engines read it as is
FACE_ALIGNMENT = "face_alignment"
GFPGAN = "gfpgan"
HF = "https://huggingface.co/"
A2F_REPOSITORIES = {
    "audio2face-mark": "nvidia/Audio2Face-3D-v2.3-Mark",
    "audio2face-claire": "nvidia/Audio2Face-3D-v2.3.1-Claire",
    "audio2face-james": "nvidia/Audio2Face-3D-v2.3.1-James",
}
"""The regression models by store folder; the SDK's download script fetches the same repositories."""
A2F_REGRESSION_FILES = (
    ("model.json", "which file is which (names network.trt; talkbridge runs network.onnx)"),
    ("network.onnx", "the regression network (onnxruntime)"),
    ("network_info.json", "network sizes and emotion names"),
    ("model_config.json", "animator settings"),
    ("model_data.npz", "PCA bases, neutral meshes, jaw points, saccade table"),
    ("implicit_emo_db.npz", "implicit emotion database"),
    ("bs_skin.npz", "ARKit-52 skin blend shapes"),
    ("bs_skin_config.json", "skin blendshape solve settings"),
    ("bs_tongue.npz", "16 tongue blend shapes"),
    ("bs_tongue_config.json", "tongue blendshape solve settings"),
    ("trt_info.json", "TensorRT build settings (kept for a complete folder)"),
    ("a2f_ms_config.json", "NVIDIA microservice settings (kept for a complete folder)"),
)
A2F_V3_IDENTITIES = ("Claire", "James", "Mark")
"""The v3.0 model's identities, in ``network_info.json``'s ``params.identities`` order."""
A2F_V3_FILES = (
    ("model.json", "v3.0 diffusion model: file list, per-identity lists (names network.trt; talkbridge runs network.onnx)"),
    ("network.onnx", "v3.0 diffusion network (onnxruntime; CUDA, or the CPU with --force-cpu-diffusion)"),
    ("network_info.json", "v3.0 sizes, diffusion steps, GRU state, identities and emotions"),
    ("trt_info.json", "TensorRT build settings (kept for a complete folder)"),
    # One set per identity, named as NVIDIA's Training Framework deploys them (audio2face/deploy.py:
    # model_config_<Actor>.json, model_data_<Actor>.npz, bs_{skin,tongue}[_config]_<Actor>...).
    *(
        entry
        for actor in A2F_V3_IDENTITIES
        for entry in (
            (f"model_config_{actor}.json", f"{actor}: animator settings"),
            (f"model_data_{actor}.npz", f"{actor}: neutral skin/tongue, jaw points, lip/eyelid deltas, saccade table"),
            (f"bs_skin_{actor}.npz", f"{actor}: ARKit-52 skin blend shapes"),
            (f"bs_skin_config_{actor}.json", f"{actor}: skin blendshape solve settings"),
            (f"bs_tongue_{actor}.npz", f"{actor}: 16 tongue blend shapes"),
            (f"bs_tongue_config_{actor}.json", f"{actor}: tongue blendshape solve settings"),
        )
    ),
)
A2E_FILES = (
    ("model.json", "Audio2Emotion: file list"),
    ("network.onnx", "Audio2Emotion network (only for use with Audio2Face)"),
    ("network_info.json", "Audio2Emotion settings"),
    # The SDK's gen_sample_data.py copies these two from the downloaded folder; model.json's
    # modelConfigPath names the first (the post-processing settings --emotion auto reads).
    ("model_config.json", "Audio2Emotion post-processing settings"),
    ("trt_info.json", "Audio2Emotion TensorRT build settings (not used by onnxruntime)"),
)


@dataclass(frozen=True)
class WeightFile:
    name: str
    group: str
    folder: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    purpose: str = ""
    default: bool = False  # downloaded by a plain `talkbridge models download`

    def to_json(self) -> dict:
        data = asdict(self)
        data["urls"] = list(self.urls)
        return data


def _rc(name: str, size: int | None, sha: str | None, purpose: str, default: bool = True) -> WeightFile:
    return WeightFile(name, "sadtalker", CHECKPOINTS, (RC_RELEASE + name, HF_MIRROR + name), size, sha, purpose, default)


CATALOG: tuple[WeightFile, ...] = (
    _rc("SadTalker_V0.0.2_256.safetensors", 725066984,
        "c211f5d6de003516bf1bbda9f47049a4c9c99133b1ab565c6961e5af16477bff",
        "audio networks, 256 px renderer, 3DMM recon"),
    _rc("SadTalker_V0.0.2_512.safetensors", 725066984,
        "0e063f7ff5258240bdb0f7690783a7b1374e6a4a81ce8fa33456f4cd49694340",
        "the same with the 512 px renderer (`download SadTalker_V0.0.2_512.safetensors`)", default=False),
    _rc("mapping_00109-model.pth.tar", 155779231,
        "84a8642468a3fcfdd9ab6be955267043116c2bec2284686a5262f1eaf017f64c",
        "MappingNet for full/extfull preprocessing"),
    _rc("mapping_00229-model.pth.tar", None,
        "62a1e06006cc963220f6477438518ed86e9788226c62ae382ddc42fbcefb83f1",
        "MappingNet for crop/extcrop/resize preprocessing"),
    *(
        WeightFile(name, "sadtalker-legacy", CHECKPOINTS, (V002_RELEASE + name,), purpose=purpose)
        for name, purpose in (
            ("auido2exp_00300-model.pth", "ExpNet (old-version layout)"),
            ("auido2pose_00140-model.pth", "PoseVAE (old-version layout)"),
            ("epoch_20.pth", "3DMM recon net (old-version layout)"),
            ("facevid2vid_00189-model.pth.tar", "face-vid2vid 256 px (old-version layout)"),
        )
    ),
    WeightFile("s3fd-619a316812.pth", "face-alignment", FACE_ALIGNMENT, (FAN_BASE + "s3fd-619a316812.pth",),
               purpose="face detector used by face-alignment", default=True),
    WeightFile("2DFAN4-11f355bf06.pth.tar", "face-alignment", FACE_ALIGNMENT, (FAN_BASE + "2DFAN4-11f355bf06.pth.tar",),
               purpose="68-point landmark network used by face-alignment", default=True),
    WeightFile("GFPGANv1.4.pth", "gfpgan", GFPGAN,
               ("https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",),
               purpose="optional face enhancer (--enhancer gfpgan)"),
)

def _hugging_face(group: str, repository: str, files: tuple[tuple[str, str], ...]) -> tuple[WeightFile, ...]:
    """One catalog entry per file of a Hugging Face model repository, in a store folder named ``group``.

    NVIDIA publishes no sizes or checksums for these files outside Hugging Face: the download checks
    each against the hash Hugging Face publishes for it (``download.published_digest``) and the store keeps it.
    """
    return tuple(WeightFile(name, group, group, (f"{HF}{repository}/resolve/main/{name}",), purpose=purpose)
                 for name, purpose in files)


CATALOG = CATALOG + tuple(
    entry for group, repository in A2F_REPOSITORIES.items() for entry in _hugging_face(group, repository, A2F_REGRESSION_FILES)
) + _hugging_face("audio2face-v3", "nvidia/Audio2Face-3D-v3.0", A2F_V3_FILES) \
  + _hugging_face("audio2emotion", "nvidia/Audio2Emotion-v2.2", A2E_FILES)

GROUPS = tuple(dict.fromkeys(entry.group for entry in CATALOG))


def load_catalog(path: str | Path) -> tuple[WeightFile, ...]:
    """A catalog from a JSON list of entries with the :class:`WeightFile` fields."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
        return tuple(
            WeightFile(**{**entry, "urls": tuple(entry["urls"])}) for entry in entries  # type: ignore[arg-type]
        )
    except FileNotFoundError:
        raise InputError("catalog file not found", path) from None
    except (ValueError, TypeError, KeyError) as error:
        raise InputError(f"not a valid weight catalog (a JSON list of file entries): {error}", path) from error


def select(catalog: tuple[WeightFile, ...], names_or_groups: list[str] | None, *, defaults: bool = True) -> list[WeightFile]:
    """Entries named by file name or group; with none given, the default set."""
    if not names_or_groups:
        return [entry for entry in catalog if entry.default or not defaults]
    chosen: list[WeightFile] = []
    for wanted in names_or_groups:
        matches = [e for e in catalog if wanted in (e.name, e.group) or wanted == "all"]
        if not matches:
            known = ", ".join([*dict.fromkeys(e.group for e in catalog), "all"])
            raise InputError(f"unknown weight file or group {wanted!r}; groups: {known}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


__all__ = ["WeightFile", "CATALOG", "GROUPS", "load_catalog", "select", "CHECKPOINTS", "FACE_ALIGNMENT", "GFPGAN"]

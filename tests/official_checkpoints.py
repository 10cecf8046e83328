"""A complete SadTalker ``checkpoints/`` folder in the official layout, filled with recipe weights.

The combined ``SadTalker_V0.0.2_256.safetensors`` (kp_extractor, generator, audio2exp, audio2pose,
face_3drecon, in the official order) plus both MappingNet ``.pth.tar`` files. The generator's
spectral-norm vectors get the golden cases' x10 adjustment so the rendered frames are not saturated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from talkbridge.core.face.recon_net import ReconNet
from talkbridge.core.sadtalker.nets.expnet import ExpNet
from talkbridge.core.sadtalker.nets.posevae import PoseVAE
from talkbridge.core.sadtalker.render.config import MappingConfig
from talkbridge.core.sadtalker.render.generator import OcclusionAwareSPADEGenerator
from talkbridge.core.sadtalker.render.kp_detector import KPDetector
from talkbridge.core.sadtalker.render.mapping import MappingNet
from talkbridge.core.sadtalker.render.models import MAPPING_FILES
from tests.golden_cases import golden_root, load_recipe


def recipe_tensors(module: torch.nn.Module, seed: int, multiply: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    recipe = load_recipe(golden_root())
    shapes = {k: list(v.shape) for k, v in module.state_dict().items()}
    weights = recipe.recipe_state_dict(shapes, seed)
    for suffix, factor in (multiply or {}).items():
        for key in weights:
            if key.endswith(suffix):
                weights[key] = (weights[key] * factor).astype(weights[key].dtype)
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in weights.items()}


def write_official_checkpoint_dir(folder: Path, seed: int = 1, size: int = 256, render: bool = True) -> Path:
    """``render=False`` leaves out the face-vid2vid and MappingNet weights (motion-only tests)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    combined: dict[str, torch.Tensor] = {}
    parts = (
        ("kp_extractor", KPDetector(), None),
        ("generator", OcclusionAwareSPADEGenerator(), {"weight_u": 10.0}),
        ("audio2exp", ExpNet(), None),
        ("audio2pose", PoseVAE(), None),
        ("face_3drecon", ReconNet(), None),
    )
    for prefix, module, multiply in parts:
        if not render and prefix in ("kp_extractor", "generator"):
            continue
        for key, value in recipe_tensors(module, seed, multiply).items():
            combined[f"{prefix}.{key}"] = value.contiguous()
    save_file(combined, str(folder / f"SadTalker_V0.0.2_{size}.safetensors"))
    for channels, name in MAPPING_FILES.items() if render else ():
        net = MappingNet(MappingConfig(coeff_nc=channels))
        torch.save({"mapping": recipe_tensors(net, seed), "epoch": 229}, folder / name)
    return folder


def write_legacy_checkpoint_dir(folder: Path, seed: int = 1) -> Path:
    """The same recipe weights in the v0.0.2 ("old version") files: one pickle per network family."""
    from talkbridge.core.sadtalker.audio_models import EXPNET_FILE, POSEVAE_FILE
    from talkbridge.core.sadtalker.render.he_estimator import HEEstimator
    from talkbridge.core.sadtalker.render.models import FACEVID2VID_FILE

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": recipe_tensors(ExpNet(), seed), "epoch": 300}, folder / EXPNET_FILE)
    torch.save({"model": recipe_tensors(PoseVAE(), seed), "epoch": 140}, folder / POSEVAE_FILE)
    torch.save({"net_recon": recipe_tensors(ReconNet(), seed), "epoch": 20}, folder / "epoch_20.pth")
    torch.save(
        {
            "generator": recipe_tensors(OcclusionAwareSPADEGenerator(), seed, {"weight_u": 10.0}),
            "kp_detector": recipe_tensors(KPDetector(), seed),
            "he_estimator": recipe_tensors(HEEstimator(), seed),
            "epoch": 189,
        },
        folder / FACEVID2VID_FILE,
    )
    for channels, name in MAPPING_FILES.items():
        torch.save({"mapping": recipe_tensors(MappingNet(MappingConfig(coeff_nc=channels)), seed), "epoch": 229}, folder / name)
    return folder

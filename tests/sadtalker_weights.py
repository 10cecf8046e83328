"""Checkpoint files in the official SadTalker containers, filled with deterministic test weights."""

from __future__ import annotations

from pathlib import Path

import torch

from talkbridge.core.sadtalker.audio_models import EXPNET_FILE, POSEVAE_FILE, SAFETENSORS_PATTERN
from talkbridge.core.sadtalker.nets.expnet import ExpNet
from talkbridge.core.sadtalker.nets.posevae import PoseVAE


def seeded_audio_models(seed: int = 0) -> tuple[ExpNet, PoseVAE]:
    """Networks with reproducible weights and non-trivial batch-norm statistics."""
    torch.manual_seed(seed)
    expnet, posevae = ExpNet(), PoseVAE()
    generator = torch.Generator().manual_seed(seed + 1)
    for model in (expnet, posevae):
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(1 + 0.1 * torch.rand(tensor.shape, generator=generator))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
        model.eval()
    return expnet, posevae


def write_pth_checkpoints(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    expnet, posevae = seeded_audio_models(seed)
    exp_path, pose_path = folder / EXPNET_FILE, folder / POSEVAE_FILE
    torch.save({"model": expnet.state_dict(), "epoch": 300}, exp_path)
    torch.save({"model": posevae.state_dict(), "epoch": 140}, pose_path)
    return exp_path, pose_path


def write_combined_safetensors(folder: Path, seed: int = 0, size: int = 256) -> Path:
    from safetensors.torch import save_file

    expnet, posevae = seeded_audio_models(seed)
    tensors = {f"audio2exp.{k}": v for k, v in expnet.state_dict().items()}
    tensors.update({f"audio2pose.{k}": v for k, v in posevae.state_dict().items()})
    path = folder / SAFETENSORS_PATTERN.format(size=size)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path

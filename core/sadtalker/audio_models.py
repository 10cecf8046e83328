"""Loading ExpNet and PoseVAE from the official SadTalker checkpoint files.

Accepted files (the names are the official ones, misspelling included):

* ``auido2exp_00300-model.pth`` / ``auido2pose_00140-model.pth``: torch pickles whose ``'model'``
  entry is the network's state dict; opened with ``weights_only=True``.
* ``SadTalker_V0.0.2_256.safetensors`` / ``_512.safetensors``: the combined file; the audio networks
  are the entries under ``audio2exp.`` and ``audio2pose.`` (identical in both sizes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from talkbridge.core.sadtalker.audio2coeff import Audio2Coeff
from talkbridge.core.sadtalker.checkpoints import load_strict, read_safetensors_prefix, read_torch_checkpoint
from talkbridge.core.sadtalker.files import COMBINED_FILE_PATTERN as SAFETENSORS_PATTERN  # noqa: F401 (re-exported)
from talkbridge.core.sadtalker.files import EXPNET_FILE, POSEVAE_FILE, AudioCheckpoints  # noqa: F401 (re-exported)
from talkbridge.core.sadtalker.nets.expnet import ExpNet
from talkbridge.core.sadtalker.nets.posevae import PoseVAE
from talkbridge.core.sadtalker.precision import DEFAULT_PRECISION, resolve_precision

log = logging.getLogger(__name__)

EXPNET_PREFIX = "audio2exp"
POSEVAE_PREFIX = "audio2pose"


def _state_for(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read_safetensors_prefix(path, prefix)
    return read_torch_checkpoint(path, "model")


def load_expnet(path: str | Path) -> ExpNet:
    """ExpNet with the weights of ``path`` (a ``.pth`` or the combined ``.safetensors``)."""
    path = Path(path)
    model = ExpNet()
    load_strict(model, _state_for(path, EXPNET_PREFIX), path)
    return model.eval()


def load_posevae(path: str | Path) -> PoseVAE:
    """PoseVAE with the weights of ``path`` (a ``.pth`` or the combined ``.safetensors``)."""
    path = Path(path)
    model = PoseVAE()
    load_strict(model, _state_for(path, POSEVAE_PREFIX), path)
    return model.eval()


def load_audio2coeff(
    checkpoints: AudioCheckpoints, device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION
) -> Audio2Coeff:
    """The audio-to-coefficient pipeline with both networks loaded strictly on ``device``.

    ``precision`` is checked before any file is read, so a bad value fails fast.
    """
    resolve_precision(precision, device)
    log.info("loading ExpNet from %s and PoseVAE from %s", checkpoints.expnet.name, checkpoints.posevae.name)
    return Audio2Coeff(
        load_expnet(checkpoints.expnet), load_posevae(checkpoints.posevae), device=device, precision=precision
    )

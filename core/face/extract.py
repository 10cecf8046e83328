"""First-frame 3DMM extraction: portrait -> render source image + the 73-value coefficient row.

This is the image half of the pipeline's input: the motion side consumes the row (64 expression,
3 angles, 3 translations, then the alignment scale and centre that full modes feed MappingNet),
the renderer consumes the cropped source image, and paste-back consumes the crop info.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkbridge.core.face.align import align_img
from talkbridge.core.face.landmarks import LandmarkProvider, StaticLandmarks, resolve_landmarks
from talkbridge.core.face.preprocess import CropInfo, landmarks_in_source, preprocess_image
from talkbridge.core.face.recon_net import ReconNet, first_frame_row

log = logging.getLogger(__name__)


@dataclass
class FirstFrame:
    """Everything derived from the source portrait."""

    row: np.ndarray  # (73,) float32: exp 64, angle 3, trans 3, (scale, tx, ty)
    coeffs: np.ndarray  # (257,) float32: the full recon-net output
    source_image: np.ndarray  # (size, size, 3) uint8 RGB: the render source
    crop: CropInfo
    landmarks: np.ndarray  # landmarks in the source image, pixels, y down
    trans_params: np.ndarray  # [w0, h0, scale, tx, ty] float64


def load_recon_net(path: str | os.PathLike, device: str | torch.device = "cpu") -> ReconNet:
    """The recon net from ``epoch_20.pth`` (entry ``net_recon``) or a combined safetensors file."""
    from talkbridge.core.sadtalker.checkpoints import load_strict, read_safetensors_prefix, read_torch_checkpoint

    path = Path(path)
    net = ReconNet()
    if path.suffix == ".safetensors":
        state = read_safetensors_prefix(path, "face_3drecon")
    else:
        state = read_torch_checkpoint(path, "net_recon")
    load_strict(net, state, path)
    return net.to(device).eval()


def recon_input(aligned_u8: np.ndarray) -> torch.Tensor:
    """(224, 224, 3) uint8 -> (1, 3, 224, 224) float32 in [0, 1] (divided in float64 first)."""
    return torch.from_numpy((np.asarray(aligned_u8, dtype=np.float64) / 255.0).astype(np.float32).transpose(2, 0, 1).copy())[None]


@torch.inference_mode()
def extract_first_frame(
    image_rgb: np.ndarray,
    recon: ReconNet,
    landmarks: np.ndarray | str | os.PathLike | None = None,
    provider: LandmarkProvider | None = None,
    mode: str = "crop",
    size: int = 256,
    image_path: str | Path | None = None,
) -> FirstFrame:
    """Crop, align and reconstruct the portrait's face.

    ``landmarks`` (array or file, original-image pixels) take precedence over ``provider``. With a
    detector, landmarks are found again on the cropped source as the official pipeline does; with
    user landmarks they are carried into the source by the crop geometry.
    """
    image_rgb = np.ascontiguousarray(np.asarray(image_rgb, dtype=np.uint8)[..., :3])
    points = resolve_landmarks(image_rgb, landmarks, provider, image_path)
    source, crop = preprocess_image(image_rgb, points, mode, size)
    in_source = landmarks_in_source(points, crop, size)
    if landmarks is None and provider is not None and not isinstance(provider, StaticLandmarks):
        found = provider.detect(source)
        if found is not None:
            in_source = np.asarray(found, dtype=np.float32)
        else:
            log.warning("no face found again in the cropped source; using the carried-over landmarks")
    y_up = in_source.copy()
    y_up[:, 1] = source.shape[0] - 1 - y_up[:, 1]
    aligned = align_img(source, y_up)
    device = next(recon.parameters()).device
    coeffs = recon(recon_input(aligned.image).to(device))
    row = first_frame_row(coeffs, torch.from_numpy(aligned.trans_params.astype(np.float32)).to(device))
    return FirstFrame(
        row=row[0].cpu().numpy(),
        coeffs=coeffs[0].cpu().numpy(),
        source_image=source,
        crop=crop,
        landmarks=in_source,
        trans_params=aligned.trans_params,
    )

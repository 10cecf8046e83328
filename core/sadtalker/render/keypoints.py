"""From MappingNet outputs to driving keypoints: pose bins -> degrees -> rotation, plus y shift and deltas.

Numerical quirks of the official code are deliberate and kept (they are what the trained networks
expect): degrees become radians with 3.14 rather than pi, and only the y component of the
predicted translation is applied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OFFICIAL_PI = 3.14


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the 66 bins, expected bin index, then 3 degrees per bin from -99."""
    probabilities = F.softmax(logits, dim=1)
    index = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (probabilities * index).sum(dim=1) * 3 - 99


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(bs,) degrees each -> (bs, 3, 3) rotation = pitch(x) . yaw(y) . roll(z)."""
    yaw, pitch, roll = (angle / 180 * OFFICIAL_PI for angle in (yaw, pitch, roll))
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    about_x = torch.stack(
        [one, zero, zero, zero, torch.cos(pitch), -torch.sin(pitch), zero, torch.sin(pitch), torch.cos(pitch)], dim=1
    ).view(-1, 3, 3)
    about_y = torch.stack(
        [torch.cos(yaw), zero, torch.sin(yaw), zero, one, zero, -torch.sin(yaw), zero, torch.cos(yaw)], dim=1
    ).view(-1, 3, 3)
    about_z = torch.stack(
        [torch.cos(roll), -torch.sin(roll), zero, torch.sin(roll), torch.cos(roll), zero, zero, zero, one], dim=1
    ).view(-1, 3, 3)
    return torch.einsum("bij,bjk,bkm->bim", about_x, about_y, about_z)


def keypoint_transformation(
    kp_canonical: torch.Tensor,
    he: dict[str, torch.Tensor],
    yaw_in: torch.Tensor | None = None,
    pitch_in: torch.Tensor | None = None,
    roll_in: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Pose, shift and deform canonical keypoints (bs, K, 3) by one MappingNet output.

    ``*_in`` are free-view overrides in degrees (bs,) that replace the decoded angles. Unlike the
    official function this one does not modify ``he['t']`` in place. Returns ``kp`` plus the
    intermediate ``yaw``/``pitch``/``roll`` degrees and ``rot_mat`` for inspection.
    """
    yaw = bins_to_degrees(he["yaw"]) if yaw_in is None else yaw_in.to(kp_canonical.dtype)
    pitch = bins_to_degrees(he["pitch"]) if pitch_in is None else pitch_in.to(kp_canonical.dtype)
    roll = bins_to_degrees(he["roll"]) if roll_in is None else roll_in.to(kp_canonical.dtype)
    rot = rotation_matrix(yaw, pitch, roll)
    rotated = torch.einsum("bmp,bkp->bkm", rot, kp_canonical)
    shift = torch.zeros_like(he["t"])
    shift[:, 1] = he["t"][:, 1]
    kp = rotated + shift.unsqueeze(1) + he["exp"].view(he["exp"].shape[0], -1, 3)
    return {"kp": kp, "yaw": yaw, "pitch": pitch, "roll": roll, "rot_mat": rot}

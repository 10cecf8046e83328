"""MappingNet: a 27-frame window of 3DMM coefficients -> head pose bins, translation, keypoint deltas.

The window runs through one wide 1-D conv and three dilated residual convs that each trim three
frames from both ends, is averaged over the remaining frames, and feeds five linear heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkbridge.core.sadtalker.render.config import MappingConfig


class MappingNet(nn.Module):
    """``forward(window (bs, coeff_nc, 27)) -> {yaw, pitch, roll, t, exp}`` (raw logits / values)."""

    def __init__(self, config: MappingConfig = MappingConfig()) -> None:
        super().__init__()
        self.config = config
        width = config.descriptor_nc
        self.first = nn.Sequential(nn.Conv1d(config.coeff_nc, width, kernel_size=7, bias=True))
        for index in range(config.layers):
            block = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(width, width, kernel_size=3, dilation=3))
            self.add_module(f"encoder{index}", block)
        self.fc_roll = nn.Linear(width, config.num_bins)
        self.fc_pitch = nn.Linear(width, config.num_bins)
        self.fc_yaw = nn.Linear(width, config.num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * config.num_kp)

    def forward(self, window: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.first(window)
        for index in range(self.config.layers):
            out = getattr(self, f"encoder{index}")(out) + out[:, :, 3:-3]
        descriptor = F.adaptive_avg_pool1d(out, 1).flatten(1)
        return {
            "yaw": self.fc_yaw(descriptor),
            "pitch": self.fc_pitch(descriptor),
            "roll": self.fc_roll(descriptor),
            "t": self.fc_t(descriptor),
            "exp": self.fc_exp(descriptor),
        }

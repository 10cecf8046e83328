"""HEEstimator: image -> head pose bins, translation and expression deltas (ResNet-style encoder).

The official renderer loads it from the ``.pth`` checkpoint but never runs it at inference; it is
ported so those files load strictly and for completeness. Its returned ``yaw`` comes from the
``fc_roll`` head and ``roll`` from ``fc_yaw``: that swap is the official behaviour and is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkbridge.core.sadtalker.render.blocks import ResBottleneck
from talkbridge.core.sadtalker.render.config import HEEstimatorConfig



class HEEstimator(nn.Module):
    """``forward(image (bs, 3, S, S)) -> {yaw, pitch, roll, t, exp}``."""

    def __init__(self, config: HEEstimatorConfig = HEEstimatorConfig()) -> None:
        super().__init__()
        e = config.block_expansion
        self.conv1 = nn.Conv2d(config.image_channel, e, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(e, affine=True)
        self.conv2 = nn.Conv2d(e, 4 * e, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(4 * e, affine=True)
        self.block1 = self._stage(1, 4 * e, 3)
        self.conv3 = nn.Conv2d(4 * e, 8 * e, kernel_size=1)
        self.norm3 = nn.BatchNorm2d(8 * e, affine=True)
        self.block2 = ResBottleneck(8 * e, stride=2)
        self.block3 = self._stage(3, 8 * e, 3)
        self.conv4 = nn.Conv2d(8 * e, 16 * e, kernel_size=1)
        self.norm4 = nn.BatchNorm2d(16 * e, affine=True)
        self.block4 = ResBottleneck(16 * e, stride=2)
        self.block5 = self._stage(5, 16 * e, 5)
        self.conv5 = nn.Conv2d(16 * e, 32 * e, kernel_size=1)
        self.norm5 = nn.BatchNorm2d(32 * e, affine=True)
        self.block6 = ResBottleneck(32 * e, stride=2)
        self.block7 = self._stage(7, 32 * e, 2)
        width = 32 * e
        self.fc_roll = nn.Linear(width, config.num_bins)
        self.fc_pitch = nn.Linear(width, config.num_bins)
        self.fc_yaw = nn.Linear(width, config.num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * config.num_kp)

    @staticmethod
    def _stage(number: int, channels: int, count: int) -> nn.Sequential:
        stage = nn.Sequential()
        for i in range(count):
            stage.add_module(f"b{number}_{i}", ResBottleneck(channels, stride=1))
        return stage

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = F.relu(self.norm1(self.conv1(image)))
        out = F.max_pool2d(out, kernel_size=3, stride=2, padding=1)
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.block1(out)
        out = F.relu(self.norm3(self.conv3(out)))
        out = self.block3(self.block2(out))
        out = F.relu(self.norm4(self.conv4(out)))
        out = self.block5(self.block4(out))
        out = F.relu(self.norm5(self.conv5(out)))
        out = self.block7(self.block6(out))
        descriptor = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return {
            "yaw": self.fc_roll(descriptor),
            "pitch": self.fc_pitch(descriptor),
            "roll": self.fc_yaw(descriptor),
            "t": self.fc_t(descriptor),
            "exp": self.fc_exp(descriptor),
        }

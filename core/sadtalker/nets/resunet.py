"""The small residual U-Net PoseVAE runs over a (32 frames x 6 pose values) map.

Downsampling halves only the time axis (stride (2, 1)); the 6 pose columns are kept throughout.
Skip connections concatenate ``[upsampled, skip]`` along channels.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualConv(nn.Module):
    """Pre-activation residual block: BN-ReLU-Conv-BN-ReLU-Conv plus a Conv-BN projection shortcut."""

    def __init__(self, cin: int, cout: int, stride, padding: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(),
            nn.Conv2d(cin, cout, 3, stride, padding),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
        self.conv_skip = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class TimeUpsample(nn.Module):
    """Transposed conv doubling the time axis only."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(cin, cout, kernel_size=(2, 1), stride=(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)


class ResUnet(nn.Module):
    def __init__(self, channels: int = 1, filters: tuple[int, int, int, int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        f0, f1, f2, f3 = filters
        self.input_layer = nn.Sequential(
            nn.Conv2d(channels, f0, 3, padding=1), nn.BatchNorm2d(f0), nn.ReLU(), nn.Conv2d(f0, f0, 3, padding=1)
        )
        self.input_skip = nn.Sequential(nn.Conv2d(channels, f0, 3, padding=1))
        self.residual_conv_1 = ResidualConv(f0, f1, (2, 1), 1)
        self.residual_conv_2 = ResidualConv(f1, f2, (2, 1), 1)
        self.bridge = ResidualConv(f2, f3, (2, 1), 1)
        self.upsample_1 = TimeUpsample(f3, f3)
        self.up_residual_conv1 = ResidualConv(f3 + f2, f2, 1, 1)
        self.upsample_2 = TimeUpsample(f2, f2)
        self.up_residual_conv2 = ResidualConv(f2 + f1, f1, 1, 1)
        self.upsample_3 = TimeUpsample(f1, f1)
        self.up_residual_conv3 = ResidualConv(f1 + f0, f0, 1, 1)
        self.output_layer = nn.Sequential(nn.Conv2d(f0, channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.input_layer(x) + self.input_skip(x)
        x2 = self.residual_conv_1(x1)
        x3 = self.residual_conv_2(x2)
        x4 = self.bridge(x3)
        x6 = self.up_residual_conv1(torch.cat([self.upsample_1(x4), x3], dim=1))
        x8 = self.up_residual_conv2(torch.cat([self.upsample_2(x6), x2], dim=1))
        x10 = self.up_residual_conv3(torch.cat([self.upsample_3(x8), x1], dim=1))
        return self.output_layer(x10)

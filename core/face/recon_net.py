"""The 3DMM reconstruction net: a ResNet-50 regressing 257 coefficients from a 224x224 aligned face.

A torchvision-style ResNet-50 (stride on the 3x3 conv, no final fc) followed by seven 1x1 conv
heads (identity, expression, texture, angles, lighting, x/y and z translation). Written out here
so the core does not depend on torchvision; the names match the official ``net_recon`` state dict.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ReconNetConfig:
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem: int = 64
    head_sizes: tuple[int, ...] = (80, 64, 80, 3, 27, 2, 1)


COEFF_SLICES = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet50Backbone(nn.Module):
    """Stem + four stages of bottlenecks + global average pool -> (bs, 2048, 1, 1)."""

    def __init__(self, config: ReconNetConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, config.stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem)
        cin = config.stem
        for index, (count, width) in enumerate(zip(config.layers, config.widths)):
            blocks = []
            for b in range(count):
                stride = 2 if (b == 0 and index > 0) else 1
                blocks.append(Bottleneck(cin, width, stride))
                cin = width * Bottleneck.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
        return F.adaptive_avg_pool2d(x, 1)


class ReconNet(nn.Module):
    """``forward(face (bs, 3, 224, 224) RGB in [0, 1]) -> (bs, 257)`` 3DMM coefficients."""

    def __init__(self, config: ReconNetConfig = ReconNetConfig()) -> None:
        super().__init__()
        self.backbone = ResNet50Backbone(config)
        self.final_layers = nn.ModuleList(
            nn.Conv2d(self.backbone.out_channels, size, 1, bias=True) for size in config.head_sizes
        )

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        pooled = self.backbone(face)
        return torch.cat([head(pooled) for head in self.final_layers], dim=1).flatten(1)


def split_coefficients(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name the parts of a (bs, 257) coefficient vector."""
    return {name: coeffs[:, part] for name, part in COEFF_SLICES.items()}


def first_frame_row(coeffs: torch.Tensor, trans_params: torch.Tensor) -> torch.Tensor:
    """(bs, 257) + (5,) alignment params -> the (bs, 73) row: exp 64, angle 3, trans 3, (s, tx, ty)."""
    parts = split_coefficients(coeffs)
    crop = trans_params.reshape(-1)[2:5].to(coeffs.dtype).expand(coeffs.shape[0], 3)
    return torch.cat([parts["exp"], parts["angle"], parts["trans"], crop], dim=1)

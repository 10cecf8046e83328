"""KPDetector: a source image -> 15 canonical 3-D keypoints (soft-argmax of a 3-D heatmap).

The image is first anti-alias downsampled (a fixed 13x13 filter stored in the checkpoint as
``down.weight``, then every 4th pixel), then a 2-D encoder / 3-D decoder hourglass without skips
produces one heatmap volume per keypoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkbridge.core.sadtalker.render.blocks import DownBlock2d, UpBlock3d, coordinate_grid
from talkbridge.core.sadtalker.render.config import KPDetectorConfig


def gaussian_taps(scale: float) -> torch.Tensor:
    """The official anti-alias kernel for ``scale`` (used only to initialise; checkpoints hold it)."""
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


class AntiAliasDownsample(nn.Module):
    """Depthwise blur with a stored kernel, zero padding, then keep every ``stride``-th pixel."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        kernel = gaussian_taps(scale)
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).clone())
        self.channels = channels
        self.stride = int(round(1 / scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.weight.shape[-1] // 2
        blurred = F.conv2d(x, self.weight, padding=pad, groups=self.channels)
        return blurred[:, :, :: self.stride, :: self.stride]


class KPHourglass(nn.Module):
    """2-D downsampling encoder, a 1x1 conv that unfolds channels into depth, 3-D upsampling decoder."""

    def __init__(self, config: KPDetectorConfig) -> None:
        super().__init__()
        expansion, cap, blocks = config.block_expansion, config.max_features, config.num_blocks
        self.down_blocks = nn.ModuleDict()
        for i in range(blocks):
            cin = config.image_channel if i == 0 else min(cap, expansion * 2**i)
            self.down_blocks[f"down{i}"] = DownBlock2d(cin, min(cap, expansion * 2 ** (i + 1)))
        self.conv = nn.Conv2d(min(cap, expansion * 2**blocks), config.reshape_channel, 1)
        self.up_blocks = nn.ModuleDict()
        for i in range(blocks):
            cin = config.reshape_channel // config.reshape_depth if i == 0 else min(cap, expansion * 2 ** (blocks - i))
            self.up_blocks[f"up{i}"] = UpBlock3d(cin, min(cap, expansion * 2 ** (blocks - i - 1)))
        self.reshape_depth = config.reshape_depth
        self.out_channels = min(cap, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.down_blocks.values():
            x = block(x)
        x = self.conv(x)
        bs, channels, height, width = x.shape
        x = x.view(bs, channels // self.reshape_depth, self.reshape_depth, height, width)
        for block in self.up_blocks.values():
            x = block(x)
        return x


class KPDetector(nn.Module):
    """``forward(image (bs, 3, S, S) in [0, 1]) -> (bs, num_kp, 3)`` keypoints in [-1, 1], (x, y, z)."""

    def __init__(self, config: KPDetectorConfig = KPDetectorConfig()) -> None:
        super().__init__()
        self.config = config
        self.predictor = KPHourglass(config)
        self.kp = nn.Conv3d(self.predictor.out_channels, config.num_kp, kernel_size=3, padding=1)
        self.down = AntiAliasDownsample(config.image_channel, config.scale_factor)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Runs in the dtype of the weights; the heatmap softmax and soft-argmax always in float32."""
        features = self.predictor(self.down(image.to(self.kp.weight.dtype)))
        heatmap = self.kp(features).float()
        bs, num_kp = heatmap.shape[:2]
        volume = heatmap.shape[2:]
        probabilities = F.softmax(heatmap.view(bs, num_kp, -1) / self.config.temperature, dim=2)
        grid = coordinate_grid(tuple(volume), heatmap.dtype, heatmap.device).view(1, 1, -1, 3)
        return (probabilities.unsqueeze(-1) * grid).sum(dim=2)

"""DenseMotionNetwork: keypoints of the source and driving frames -> a dense 3-D warp and occlusion.

Each keypoint proposes a pure translation of the (compressed) source feature volume; a 3-D
hourglass looks at those 16 warped copies (identity plus one per keypoint) together with
keypoint heatmaps, predicts a soft per-voxel choice between them, and an occlusion map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkbridge.core.sadtalker.render.blocks import DownBlock3d, UpBlock3d, coordinate_grid
from talkbridge.core.sadtalker.render.config import DenseMotionConfig


class HourglassEncoder(nn.Module):
    """3-D down blocks; returns the input and every level's output (for the decoder's skips)."""

    def __init__(self, expansion: int, cin: int, blocks: int, cap: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(cin if i == 0 else min(cap, expansion * 2**i), min(cap, expansion * 2 ** (i + 1)))
            for i in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [x]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class HourglassDecoder(nn.Module):
    """3-D up blocks with skip concatenation, then Conv3d -> BN -> ReLU at the input resolution."""

    def __init__(self, expansion: int, cin: int, blocks: int, cap: int) -> None:
        super().__init__()
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(blocks)):
            width = (1 if i == blocks - 1 else 2) * min(cap, expansion * 2 ** (i + 1))
            self.up_blocks.append(UpBlock3d(width, min(cap, expansion * 2**i)))
        self.out_channels = expansion + cin
        self.conv = nn.Conv3d(self.out_channels, self.out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_channels, affine=True)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        pending = list(levels)
        out = pending.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), pending.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    def __init__(self, expansion: int, cin: int, blocks: int, cap: int) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(expansion, cin, blocks, cap)
        self.decoder = HourglassDecoder(expansion, cin, blocks, cap)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@dataclass
class SourceMotionCache:
    """What dense motion needs from the source alone: reusable across every driving frame."""

    compressed: torch.Tensor  # (bs, compress, d, h, w)
    grid: torch.Tensor  # (d, h, w, 3) identity grid
    source_heat: torch.Tensor  # (bs, num_kp, d, h, w)
    kp_source: torch.Tensor  # (bs, num_kp, 3)


class DenseMotionNetwork(nn.Module):
    """``forward(feature_3d, kp_driving, kp_source) -> {mask, deformation, occlusion_map}``."""

    def __init__(self, config: DenseMotionConfig, num_kp: int, feature_channel: int) -> None:
        super().__init__()
        self.config = config
        self.num_kp = num_kp
        hourglass_in = (num_kp + 1) * (config.compress + 1)
        self.hourglass = Hourglass3d(config.block_expansion, hourglass_in, config.num_blocks, config.max_features)
        width = self.hourglass.out_channels
        self.mask = nn.Conv3d(width, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, config.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(config.compress, affine=True)
        self.occlusion = nn.Conv2d(width * config.reshape_depth, 1, kernel_size=7, padding=3)

    def _heat(self, grid: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
        """Gaussian bumps around each keypoint on the grid: (bs, num_kp, d, h, w)."""
        diff = grid.unsqueeze(0).unsqueeze(0) - kp.view(kp.shape[0], kp.shape[1], 1, 1, 1, 3)
        return torch.exp(-0.5 * (diff**2).sum(-1) / self.config.kp_variance)

    def prepare_source(self, feature_3d: torch.Tensor, kp_source: torch.Tensor) -> SourceMotionCache:
        """Compress the source volume and make its heatmaps once per source image."""
        compressed = F.relu(self.norm(self.compress(feature_3d.to(self.compress.weight.dtype))))
        grid = coordinate_grid(tuple(compressed.shape[2:]), torch.float32, compressed.device)
        return SourceMotionCache(compressed, grid, self._heat(grid, kp_source), kp_source)

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return self.forward_cached(self.prepare_source(feature_3d, kp_source), kp_driving)

    def forward_cached(self, source: SourceMotionCache, kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keypoints, heatmaps, sampling grids, the mask softmax and the deformation are float32; the
        hourglass and the mask/occlusion convs run in the weights' dtype (see ``core.sadtalker.precision``)."""
        compressed, grid = source.compressed.float(), source.grid
        bs, channels, d, h, w = compressed.shape
        slots = self.num_kp + 1
        # Sparse motions: identity, then per keypoint a translation taking driving to source.
        shifted = grid.view(1, 1, d, h, w, 3) - kp_driving.view(bs, self.num_kp, 1, 1, 1, 3)
        shifted = shifted + source.kp_source.view(bs, self.num_kp, 1, 1, 1, 3)
        identity = grid.view(1, 1, d, h, w, 3).expand(bs, 1, d, h, w, 3)
        sparse = torch.cat([identity, shifted], dim=1)  # (bs, slots, d, h, w, 3)
        repeated = compressed.unsqueeze(1).expand(bs, slots, channels, d, h, w).reshape(bs * slots, channels, d, h, w)
        deformed = F.grid_sample(repeated, sparse.reshape(bs * slots, d, h, w, 3), align_corners=False)
        deformed = deformed.view(bs, slots, channels, d, h, w)
        heat = self._heat(grid, kp_driving) - source.source_heat
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)
        stacked = torch.cat([heat, deformed], dim=2).view(bs, slots * (channels + 1), d, h, w)

        prediction = self.hourglass(stacked.to(self.mask.weight.dtype))
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        kept = torch.where(mask < self.config.mask_floor, torch.zeros_like(mask), mask)
        deformation = (kept.unsqueeze(-1) * sparse).sum(dim=1)  # (bs, d, h, w, 3)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(bs, -1, h, w)).float())
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion}

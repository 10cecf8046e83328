"""Small building blocks shared by the face-vid2vid networks.

Attribute names (``conv``, ``norm``, ``conv1`` ...) are chosen so that the state-dict keys equal the
official checkpoints'. Batch norms are ordinary ``nn.BatchNorm*d``: the official synchronised batch
norm behaves exactly like them in eval mode and stores the same five entries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalised sampling grid for a (H, W) or (D, H, W) volume, last axis ordered (x, y[, z]).

    Each axis runs from exactly -1 to +1 (the align-corners-True spacing), while every sampler in the
    networks uses align_corners=False; that mismatch is part of the official behaviour and is kept.
    """
    axes = [torch.arange(n, dtype=dtype, device=device) for n in shape]
    axes = [2 * (a / (n - 1)) - 1 for a, n in zip(axes, shape)]
    mesh = torch.meshgrid(*axes, indexing="ij")  # (d, h, w) order
    return torch.stack(tuple(reversed(mesh)), dim=-1)  # (x, y, z) order


class SameBlock2d(nn.Module):
    """Conv2d -> BN -> ReLU (or LeakyReLU 0.01), keeping the spatial size."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1, lrelu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding)
        self.norm = nn.BatchNorm2d(cout, affine=True)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x))
        return F.leaky_relu(out, 0.01) if self.lrelu else F.relu(out)


class DownBlock2d(nn.Module):
    """Conv2d 3x3 -> BN -> ReLU -> 2x2 average pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class DownBlock3d(nn.Module):
    """Conv3d 3x3x3 -> BN -> ReLU -> average pooling that halves height and width but not depth."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm(self.conv(x)))
        if out.dtype == torch.float32:
            return F.avg_pool3d(out, (1, 2, 2))
        # Half dtypes: the same pooling as 2-D over (depth x channels) planes (CPU has no bf16 avg_pool3d).
        bs, channels, depth, height, width = out.shape
        pooled = F.avg_pool2d(out.reshape(bs, channels * depth, height, width), 2)
        return pooled.reshape(bs, channels, depth, height // 2, width // 2)


class UpBlock3d(nn.Module):
    """Nearest upsampling of height and width by 2 -> Conv3d 3x3x3 -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.BatchNorm3d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: (BN -> ReLU -> Conv3d) twice, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels, affine=True)
        self.norm2 = nn.BatchNorm3d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class ResBottleneck(nn.Module):
    """1x1 squeeze -> 3x3 (optionally strided) -> 1x1 expand, BN after each, with a projected skip when strided."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        inner = channels // 4
        self.conv1 = nn.Conv2d(channels, inner, 1)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(inner, channels, 1)
        self.norm1 = nn.BatchNorm2d(inner, affine=True)
        self.norm2 = nn.BatchNorm2d(inner, affine=True)
        self.norm3 = nn.BatchNorm2d(channels, affine=True)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(channels, channels, 1, stride=stride)
            self.norm4 = nn.BatchNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


class SpectralNormConv2d(nn.Module):
    """Conv2d whose weight is divided by sigma = u . (W v), with u and v used exactly as stored.

    This is what a spectrally normalised conv computes in eval mode: no power iteration, no
    re-normalisation of u or v. Storing ``weight_orig``/``weight_u``/``weight_v`` under those names
    (and in that order, after ``bias``) makes official state dicts load unchanged, without depending
    on torch's hook-based spectral norm and its version metadata.
    """

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.padding = padding
        if bias:
            self.bias = nn.Parameter(torch.zeros(cout))
        else:
            self.register_parameter("bias", None)
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)
        self.register_buffer("weight_u", F.normalize(torch.randn(cout), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn(cin * kernel * kernel), dim=0))
        # W / sigma fixed in float32 before a half cast (see before_reduced_cast); not in the state dict.
        self.register_buffer("frozen_weight", None, persistent=False)

    def normalised_weight(self) -> torch.Tensor:
        """W / sigma, with sigma and the division in float32 and the result in the weight's dtype."""
        if self.frozen_weight is not None:
            return self.frozen_weight
        weight = self.weight_orig.float()
        matrix = weight.reshape(weight.shape[0], -1)
        sigma = torch.dot(self.weight_u.float(), torch.mv(matrix, self.weight_v.float()))
        return (weight / sigma).to(self.weight_orig.dtype)

    def before_reduced_cast(self) -> None:
        """Fix W / sigma from the float32 weights, so that the cast rounds the normalised weight once.

        Called by ``precision.cast_module`` just before a half cast. Otherwise sigma would be computed
        from the rounded ``weight_orig``, ``u`` and ``v``: sigma = u . (W v) is a sum with heavy
        cancellation (u and v are not W's singular vectors, and on the recipe weights far from
        them), so its relative error is many times bf16's 2^-9 and scales the whole layer: measured,
        this alone took the SPADE decoder in bf16 from 47.4 to 41.6 dB (official size, 256).
        """
        with torch.no_grad():
            self.frozen_weight = self.normalised_weight()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001 - torch's hook
        self.frozen_weight = None  # new weights: sigma is computed from them again
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalised_weight(), self.bias, padding=self.padding)

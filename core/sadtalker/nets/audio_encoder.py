"""The Wav2Lip-style convolutional audio encoder shared (as an architecture) by ExpNet and PoseVAE.

It maps one mel window, shaped (1, 80 mel bins, 16 time steps), to a 512-vector. Thirteen
conv + batch-norm blocks, some with an identity shortcut, each followed by ReLU.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvNormBlock(nn.Module):
    """Conv2d -> BatchNorm2d (-> + input when ``residual``) -> ReLU.

    The submodule is named ``conv_block`` with children ``0`` (conv) and ``1`` (norm) so the
    parameter names equal the official checkpoints'.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride, padding: int, residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return torch.relu(out)


# (in, out, kernel, stride (mel, time), padding, residual) for each of the 13 blocks.
WAV2LIP_AUDIO_LAYERS: tuple[tuple[int, int, int, tuple[int, int], int, bool], ...] = (
    (1, 32, 3, (1, 1), 1, False),
    (32, 32, 3, (1, 1), 1, True),
    (32, 32, 3, (1, 1), 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, (1, 1), 1, True),
    (64, 64, 3, (1, 1), 1, True),
    (64, 128, 3, (3, 3), 1, False),
    (128, 128, 3, (1, 1), 1, True),
    (128, 128, 3, (1, 1), 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, (1, 1), 1, True),
    (256, 512, 3, (1, 1), 0, False),
    (512, 512, 1, (1, 1), 0, False),
)


def wav2lip_audio_encoder() -> nn.Sequential:
    """The 13-block encoder: (N, 1, 80, 16) mel windows -> (N, 512, 1, 1) embeddings."""
    return nn.Sequential(*(ConvNormBlock(*spec) for spec in WAV2LIP_AUDIO_LAYERS))

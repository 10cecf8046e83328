"""Inference-time copies of the audio encoder with batch norm folded into the convolutions.

In eval mode a BatchNorm after a convolution is an affine map per output channel, so it can be
multiplied into the convolution's weights and bias. That removes a full pass over every activation
map per block (13 per frame per encoder) and lets oneDNN fuse the ReLU. Results change only by float
rounding (~1e-7 relative); the original modules, which own the checkpoint weights, are untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from talkbridge.core.sadtalker.nets.audio_encoder import ConvNormBlock


def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution computing ``norm(conv(x))`` with eval-mode statistics."""
    folded = copy.deepcopy(conv)
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        folded.weight.copy_(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
        folded.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias.detach())
    return folded.requires_grad_(False)


class FoldedBlock(nn.Module):
    def __init__(self, block: ConvNormBlock) -> None:
        super().__init__()
        conv, norm = block.conv_block[0], block.conv_block[1]
        self.conv = fold_batchnorm(conv, norm)
        self.residual = block.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.residual:
            out += x  # in place: the same sum, one activation map fewer to allocate per block
        return torch.relu_(out)


def folded_encoder(encoder: nn.Sequential) -> nn.Sequential:
    """An eval-only equivalent of a Wav2Lip audio encoder (a Sequential of ConvNormBlocks)."""
    return nn.Sequential(*(FoldedBlock(block) for block in encoder)).eval()

"""ExpNet (SadTalker's Audio2Exp generator): audio window -> 3DMM expression, one frame at a time.

Each frame is independent: the audio embedding of its 0.2 s mel window is concatenated with the
frame's reference expression and its blink level, and a single linear layer maps that to the 64
expression coefficients. There is no temporal smoothing and no residual to the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from talkbridge.core.sadtalker.config import ExpNetConfig
from talkbridge.core.sadtalker.nets.audio_encoder import wav2lip_audio_encoder


class ExpNet(nn.Module):
    def __init__(self, config: ExpNetConfig = ExpNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.audio_encoder = wav2lip_audio_encoder()
        self.mapping1 = nn.Linear(config.audio_embedding + config.expression_dim + config.blink_dim, config.expression_dim)

    def forward(self, mel_windows: torch.Tensor, ref_expression: torch.Tensor, blink: torch.Tensor) -> torch.Tensor:
        """(N, 1, 80, 16) windows, (N, 64) reference expression, (N, 1) blink -> (N, 64)."""
        audio = self.audio_encoder(mel_windows).flatten(1)
        return self.mapping1(torch.cat([audio, ref_expression, blink], dim=1))

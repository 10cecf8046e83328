"""PoseVAE (SadTalker's Audio2Pose): a conditional VAE generating head motion in 32-frame chunks.

At inference only the audio encoder and the CVAE decoder run: a latent ``z`` plus the learned bias of
the chosen pose style, the first-frame pose and per-frame audio features decode to 32 frames of pose
offset relative to the first frame. The CVAE encoder and the motion discriminator are training-time
parts; they are here because the official checkpoints hold their weights and loading is strict.
"""

from __future__ import annotations

import torch
from torch import nn

from talkbridge.core.sadtalker.config import PoseVAEConfig
from talkbridge.core.sadtalker.nets.audio_encoder import wav2lip_audio_encoder
from talkbridge.core.sadtalker.nets.resunet import ResUnet


class PoseAudioEncoder(nn.Module):
    """Applies the Wav2Lip encoder to every frame of a (B, T, 1, 80, 16) sequence -> (B, T, 512)."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_encoder = wav2lip_audio_encoder()

    def forward(self, mel_windows: torch.Tensor) -> torch.Tensor:
        batch, frames = mel_windows.shape[:2]
        flat = mel_windows.reshape(batch * frames, *mel_windows.shape[2:])
        return self.audio_encoder(flat).reshape(batch, frames, -1)


def _mlp(sizes: list[int], last: nn.Module) -> nn.Sequential:
    """Linear layers named L0, L1, ... with ReLU between them and ``last`` after the final one."""
    mlp = nn.Sequential()
    for index, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:])):
        mlp.add_module(f"L{index}", nn.Linear(cin, cout))
        is_last = index == len(sizes) - 2
        mlp.add_module("sigmoid" if is_last and isinstance(last, nn.Sigmoid) else f"A{index}", last if is_last else nn.ReLU())
    return mlp


class PoseEncoder(nn.Module):
    """Training-time CVAE encoder (pose chunk -> latent). Kept for checkpoint compatibility."""

    def __init__(self, config: PoseVAEConfig) -> None:
        super().__init__()
        self.classbias = nn.Parameter(torch.randn(config.num_styles, config.latent))
        self.resunet = ResUnet()
        self.MLP = _mlp([config.encoder_input, *config.encoder_layers[1:]], nn.ReLU())
        self.linear_means = nn.Linear(config.encoder_layers[-1], config.latent)
        self.linear_logvar = nn.Linear(config.encoder_layers[-1], config.latent)
        self.linear_audio = nn.Linear(config.audio_embedding, config.audio_pose_dim)


class PoseDecoder(nn.Module):
    """CVAE decoder: (z, style, first-frame pose, 32 audio embeddings) -> 32 frames of pose offset."""

    def __init__(self, config: PoseVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.classbias = nn.Parameter(torch.randn(config.num_styles, config.latent))
        self.resunet = ResUnet()
        self.MLP = _mlp([config.decoder_input, *config.decoder_layers], nn.Sigmoid())
        self.pose_linear = nn.Linear(config.pose_dim, config.pose_dim)
        self.linear_audio = nn.Linear(config.audio_embedding, config.audio_pose_dim)

    def forward(self, z: torch.Tensor, style: torch.Tensor, ref_pose: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        """z (B, 64), style (B,) int64, ref_pose (B, 6), audio_emb (B, 32, 512) -> (B, 32, 6)."""
        cfg = self.config
        audio = self.linear_audio(audio_emb).reshape(audio_emb.shape[0], -1)
        latent = z + self.classbias[style]
        hidden = self.MLP(torch.cat([ref_pose, latent, audio], dim=-1))
        hidden = hidden.reshape(-1, 1, cfg.seq_len, cfg.pose_dim)
        residual = self.resunet(hidden).squeeze(1)
        return self.pose_linear(residual)


class CVAE(nn.Module):
    def __init__(self, config: PoseVAEConfig) -> None:
        super().__init__()
        self.encoder = PoseEncoder(config)
        self.decoder = PoseDecoder(config)


class MotionDiscriminatorBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, padding, bias=False)
        self.norm = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class MotionDiscriminator(nn.Module):
    """Training-time pose-sequence discriminator. Kept for checkpoint compatibility."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            MotionDiscriminatorBlock(channels, 256, 4, 2, 1),
            MotionDiscriminatorBlock(256, 512, 4, 2, 1),
            MotionDiscriminatorBlock(512, 1024, 3, 1, 1),
            nn.Conv1d(1024, 1, 3, 1, 1),
        )

    def forward(self, pose_sequence: torch.Tensor) -> torch.Tensor:
        return self.seq(pose_sequence)


class PoseVAE(nn.Module):
    def __init__(self, config: PoseVAEConfig = PoseVAEConfig()) -> None:
        super().__init__()
        self.config = config
        self.audio_encoder = PoseAudioEncoder()
        self.netG = CVAE(config)
        self.netD_motion = MotionDiscriminator(config.discriminator_channels)

    def decode(self, z: torch.Tensor, style: torch.Tensor, ref_pose: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        return self.netG.decoder(z, style, ref_pose, audio_emb)

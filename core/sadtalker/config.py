"""Configuration of the SadTalker audio-side networks, one dataclass per model.

The values are those of the official checkpoints (SadTalker v0.0.2, `auido2exp.yaml` and
`auido2pose.yaml`); changing them makes networks that cannot load those files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExpNetConfig:
    """ExpNet: per-frame audio window + reference expression + blink -> 64 expression coefficients."""

    audio_embedding: int = 512
    expression_dim: int = 64
    blink_dim: int = 1
    infer_batch: int = 10  # frames per network call in the official loop; numerically irrelevant


@dataclass(frozen=True)
class PoseVAEConfig:
    """PoseVAE: a conditional VAE over 32-frame pose chunks, conditioned on audio and a style id."""

    num_styles: int = 46
    audio_embedding: int = 512
    audio_pose_dim: int = 6  # per-frame audio feature fed to the decoder
    seq_len: int = 32
    latent: int = 64
    pose_dim: int = 6
    encoder_layers: tuple[int, ...] = (192, 128)
    decoder_layers: tuple[int, ...] = (128, 192)
    discriminator_channels: int = 6

    @property
    def encoder_input(self) -> int:
        # encoder MLP input: first layer size + latent (class bias) + flattened pose chunk + ref pose
        return self.encoder_layers[0] + self.latent + self.seq_len * self.pose_dim + self.pose_dim

    @property
    def decoder_input(self) -> int:
        # decoder MLP input: ref pose + latent + flattened per-frame audio features
        return self.pose_dim + self.latent + self.seq_len * self.audio_pose_dim

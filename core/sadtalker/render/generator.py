"""OcclusionAwareSPADEGenerator: source image + source/driving keypoints -> the driven frame.

The source becomes a 3-D appearance volume, dense motion warps it towards the driving keypoints,
the warped volume is flattened back to 2-D, masked by the occlusion map, and a SPADE decoder
(spectral-norm residual blocks conditioned on that same map) paints the frame at full size.
Everything that depends on the source image only can be computed once with :meth:`prepare_source`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkbridge.core.sadtalker.render.blocks import DownBlock2d, ResBlock3d, SameBlock2d, SpectralNormConv2d
from talkbridge.core.sadtalker.render.config import GeneratorConfig
from talkbridge.core.sadtalker.render.dense_motion import DenseMotionNetwork, SourceMotionCache


class SPADE(nn.Module):
    """Parameter-free instance norm, then a per-pixel scale and shift predicted from the segmap."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, wide: bool = False) -> torch.Tensor:
        """Instance-norm statistics in float32 (``x`` may be half); the segmap convs in their dtype.

        In float32 this is the reference arithmetic. Under a half precision the modulation runs in
        the half dtype (the result is half), or with ``wide`` in float32 (the result is float32):
        ``n + n * gamma + beta``, as ``1 + gamma`` would round in the half dtype.
        """
        normalised = F.instance_norm(x.float(), eps=1e-5)
        segmap = segmap.to(self.mlp_gamma.weight.dtype)
        if segmap.shape[2:] != x.shape[2:]:
            segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(segmap)
        gamma, beta = self.mlp_gamma(hidden), self.mlp_beta(hidden)
        if gamma.dtype == torch.float32:
            return normalised * (1 + gamma) + beta
        if wide:
            return (normalised * gamma).add_(normalised).add_(beta)
        return normalised.to(gamma.dtype) * (1 + gamma) + beta


class SPADEResnetBlock(nn.Module):
    """Two SPADE -> LeakyReLU(0.2) -> spectral-norm conv stages, with a learned shortcut if widths differ.

    Under a half precision the residual stream (``x`` and the result) stays float32 and each conv
    gets its input in the weights' dtype; ``wide_modulation`` also keeps the SPADE modulation in
    float32 (see :meth:`SPADE.forward`).
    """

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int, wide_modulation: bool = False) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        self.wide_modulation = wide_modulation
        fmid = min(fin, fout)
        self.conv_0 = SpectralNormConv2d(fin, fmid, kernel=3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmid, fout, kernel=3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, kernel=1, bias=False)
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmid, label_nc, hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        dtype, wide = self.conv_0.weight_orig.dtype, self.wide_modulation
        shortcut = self.conv_s(self.norm_s(x, segmap, wide).to(dtype)).float() if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap, wide).to(dtype), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap, wide).to(dtype), 0.2))
        return shortcut + dx.float()


class SPADEDecoder(nn.Module):
    """``forward(feature (bs, C, h, w)) -> (image in (0,1), logits)`` at 4x the feature size."""

    def __init__(self, channels: int, out_channels: int, image_channel: int, middle_blocks: int, hidden: int) -> None:
        super().__init__()
        wide = 2 * channels
        self.fc = nn.Conv2d(channels, wide, kernel_size=3, padding=1)
        self.middle_blocks = middle_blocks
        for i in range(middle_blocks):
            # Float32 modulation at the bottleneck (64x64 maps at 256): bf16 frames 41.1 -> 41.9 dB at
            # little cost. The upsampling blocks' maps are 4-16x larger: float32 there as well measured
            # 42.3 dB for ~5% more time, so they modulate in the half dtype.
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(wide, wide, channels, hidden, wide_modulation=True))
        self.up_0 = SPADEResnetBlock(wide, channels, channels, hidden)
        self.up_1 = SPADEResnetBlock(channels, out_channels, channels, hidden)
        self.conv_img = nn.Conv2d(out_channels, image_channel, kernel_size=3, padding=1)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``fc`` stays float32 under a half precision (see ``half_precision_modules``); the blocks
        keep their residual stream in float32 and run their convs in their weights' dtype."""
        x = self.fc(feature.to(self.fc.weight.dtype)).float()
        segmap = feature.to(self.conv_img.weight.dtype)  # cast once for every SPADE
        for i in range(self.middle_blocks):
            x = getattr(self, f"G_middle_{i}")(x, segmap)
        x = self.up_0(F.interpolate(x, scale_factor=2), segmap)
        x = self.up_1(F.interpolate(x, scale_factor=2), segmap)
        logits = self.conv_img(F.leaky_relu(x.to(self.conv_img.weight.dtype), 0.2)).float()
        return torch.sigmoid(logits), logits

    def half_precision_modules(self) -> list[nn.Module]:
        """Every module except ``fc``: fc's output feeds the first block's instance norm, whose
        per-channel mean is about twice its spread, so bf16 rounding there is magnified (~44 dB alone)."""
        return [module for name, module in self.named_children() if name != "fc"]


@dataclass
class SourceFeatures:
    """Per-source-image work of the generator, reusable for every driving frame."""

    feature_3d: torch.Tensor  # (bs, feature_channel, depth, h, w)
    motion: SourceMotionCache


class OcclusionAwareSPADEGenerator(nn.Module):
    """``forward(source_image, kp_driving, kp_source) -> {prediction, decoder_logits, deformation, occlusion_map, mask}``."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        # Registration order matters: it is the key order of the official state dict.
        self.dense_motion_network = DenseMotionNetwork(config.dense_motion, config.num_kp, config.feature_channel)
        e, cap = config.block_expansion, config.max_features
        self.first = SameBlock2d(config.image_channel, e, kernel=3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(cap, e * 2**i), min(cap, e * 2 ** (i + 1))) for i in range(config.num_down_blocks)
        )
        encoded = min(cap, e * 2**config.num_down_blocks)
        self.second = nn.Conv2d(encoded, cap, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(config.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(config.reshape_channel))
        bottleneck = e * 2**config.num_down_blocks
        self.third = SameBlock2d(cap, bottleneck, kernel=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(bottleneck, bottleneck, kernel_size=1)
        self.decoder = SPADEDecoder(bottleneck, e, config.image_channel, config.spade_middle_blocks, config.spade_hidden)

    def per_frame_modules(self) -> list[nn.Module]:
        """The per-frame modules a half precision casts (see ``core.sadtalker.precision``).

        The source-only part (appearance volume, dense motion's compress conv) runs once per portrait
        and stays in float32: it costs nothing per frame, and bf16 there alone costs ~5 dB of PSNR.
        The bottleneck (``third``, ``fourth``) and the decoder's ``fc`` also stay float32: 1.7% of the
        per-frame FLOPs at 256, but their activations sit on a per-channel offset about twice their
        spread, which the first SPADE instance norm removes, so bf16 rounding there is magnified:
        each of the three alone costs the frames 43-44 dB; casting them too takes the official-size
        bf16 frames from 41.9 to 36.3 dB.
        """
        motion = self.dense_motion_network
        return [motion.hourglass, motion.mask, motion.occlusion, *self.decoder.half_precision_modules()]

    def appearance_volume(self, source_image: torch.Tensor) -> torch.Tensor:
        out = self.first(source_image.to(self.second.weight.dtype))
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        bs, channels, h, w = out.shape
        out = out.view(bs, channels // self.config.reshape_depth, self.config.reshape_depth, h, w)
        return self.resblocks_3d(out)

    def prepare_source(self, source_image: torch.Tensor, kp_source: torch.Tensor) -> SourceFeatures:
        """Run everything that depends on the source alone (appearance volume, source heatmaps)."""
        feature_3d = self.appearance_volume(source_image)
        return SourceFeatures(feature_3d, self.dense_motion_network.prepare_source(feature_3d, kp_source))

    def forward(
        self, source_image: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return self.forward_cached(self.prepare_source(source_image, kp_source), kp_driving)

    def forward_cached(self, source: SourceFeatures, kp_driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """Render driving frames; ``source`` may hold one sample, shared by every driving keypoint set."""
        feature_3d, motion = source.feature_3d, source.motion
        frames = kp_driving.shape[0]
        if feature_3d.shape[0] != frames:
            if feature_3d.shape[0] != 1:
                raise ValueError(f"source batch {feature_3d.shape[0]} cannot drive {frames} frames")
            feature_3d = feature_3d.expand(frames, *feature_3d.shape[1:])
            motion = SourceMotionCache(
                motion.compressed.expand(frames, *motion.compressed.shape[1:]),
                motion.grid,
                motion.source_heat.expand(frames, *motion.source_heat.shape[1:]),
                motion.kp_source.expand(frames, *motion.kp_source.shape[1:]),
            )
        dense = self.dense_motion_network.forward_cached(motion, kp_driving)
        deformation, occlusion = dense["deformation"], dense["occlusion_map"]
        # Sampling in float32 (the volume is upcast); the convs after it run in the weights' dtype.
        warped = F.grid_sample(feature_3d.float(), deformation, align_corners=False).to(self.fourth.weight.dtype)
        bs, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.reshape(bs, c * d, h, w)))
        if occlusion.shape[2:] != out.shape[2:]:
            occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
        out = out * occlusion.to(out.dtype)
        prediction, logits = self.decoder(out)
        return {
            "prediction": prediction,
            "decoder_logits": logits,
            "deformation": deformation,
            "occlusion_map": dense["occlusion_map"],
            "mask": dense["mask"],
        }

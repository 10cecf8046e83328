"""Configuration dataclasses of the render networks, with the values of the official yaml files.

``facerender.yaml`` and ``facerender_still.yaml`` differ only in the MappingNet input width (70
versus 73 channels); everything else is shared. Tests build the same networks with smaller numbers
to exercise behaviour quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MappingConfig:
    """MappingNet: a window of 3DMM coefficients -> head pose logits, translation, expression deltas."""

    coeff_nc: int = 70
    descriptor_nc: int = 1024
    layers: int = 3
    num_kp: int = 15
    num_bins: int = 66


@dataclass(frozen=True)
class KPDetectorConfig:
    """Canonical keypoint detector (the KPHourglass with a 3-D heatmap head)."""

    num_kp: int = 15
    image_channel: int = 3
    temperature: float = 0.1
    block_expansion: int = 32
    max_features: int = 1024
    scale_factor: float = 0.25
    num_blocks: int = 5
    reshape_channel: int = 16384
    reshape_depth: int = 16


@dataclass(frozen=True)
class HEEstimatorConfig:
    """Head pose and expression estimator (loaded by the official code, never run at inference)."""

    num_kp: int = 15
    image_channel: int = 3
    block_expansion: int = 64
    max_features: int = 2048
    num_bins: int = 66


@dataclass(frozen=True)
class DenseMotionConfig:
    """Dense motion: per-keypoint warps blended by a learned mask, plus an occlusion map."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4
    kp_variance: float = 0.01
    mask_floor: float = 1e-3


@dataclass(frozen=True)
class GeneratorConfig:
    """OcclusionAwareSPADEGenerator: appearance volume, warp, SPADE decoder."""

    num_kp: int = 15
    image_channel: int = 3
    feature_channel: int = 32
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6
    spade_hidden: int = 128
    spade_middle_blocks: int = 6
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True)
class RenderConfig:
    """Everything the face renderer needs: the four networks and the semantic window radius."""

    mapping: MappingConfig = field(default_factory=MappingConfig)
    kp_detector: KPDetectorConfig = field(default_factory=KPDetectorConfig)
    he_estimator: HEEstimatorConfig = field(default_factory=HEEstimatorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    semantic_radius: int = 13

    @classmethod
    def official(cls, still_mapping: bool = False) -> "RenderConfig":
        """``facerender.yaml`` (70-channel mapping) or ``facerender_still.yaml`` (73, full modes)."""
        return cls(mapping=MappingConfig(coeff_nc=73 if still_mapping else 70))

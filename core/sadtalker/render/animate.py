"""The per-frame animation loop: MappingNet -> keypoints -> generator, with source work done once.

The official loop recomputes, for every frame, the generator's appearance volume and the source
half of dense motion although both depend only on the source image. Here they are computed once
per source (:class:`SourceState`) and reused, which leaves the frame cost to dense motion's
hourglass and the SPADE decoder. Results are the same computation, so they stay within the golden
tolerances.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from talkbridge.core.sadtalker.render.generator import OcclusionAwareSPADEGenerator, SourceFeatures
from talkbridge.core.sadtalker.render.keypoints import keypoint_transformation
from talkbridge.core.sadtalker.render.kp_detector import KPDetector
from talkbridge.core.sadtalker.render.mapping import MappingNet

log = logging.getLogger(__name__)


@dataclass
class StageTimer:
    """Wall-clock seconds spent per stage (for the benchmark); cheap enough to keep always on."""

    seconds: dict[str, float] = field(default_factory=lambda: {"mapping": 0.0, "keypoints": 0.0, "generator": 0.0})

    def add(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


@dataclass
class SourceState:
    """Source-only work: canonical and source keypoints and the generator's source features."""

    kp_canonical: torch.Tensor  # (n, K, 3), n = 1 when every batch row shares the source
    kp_source: torch.Tensor
    features: SourceFeatures


def _single_if_shared(tensor: torch.Tensor) -> torch.Tensor:
    """Collapse a batch whose rows are all identical (the official loop repeats the source)."""
    if tensor.shape[0] > 1 and bool((tensor == tensor[:1]).all()):
        return tensor[:1]
    return tensor


@torch.inference_mode()
def prepare_source(
    source_image: torch.Tensor,
    source_semantics: torch.Tensor,
    kp_detector: KPDetector,
    mapping: MappingNet,
    generator: OcclusionAwareSPADEGenerator,
    timer: StageTimer | None = None,
) -> SourceState:
    """Run the source-only networks once (on one row when the batch repeats the same source)."""
    image, semantics = _single_if_shared(source_image), _single_if_shared(source_semantics)
    if image.shape[0] != semantics.shape[0]:
        image = image.expand(max(image.shape[0], semantics.shape[0]), *image.shape[1:])
        semantics = semantics.expand(image.shape[0], *semantics.shape[1:])
    started = time.perf_counter()
    kp_canonical = kp_detector(image)
    if timer:
        timer.add("keypoints", started)
    started = time.perf_counter()
    he_source = mapping(semantics)
    if timer:
        timer.add("mapping", started)
    started = time.perf_counter()
    kp_source = keypoint_transformation(kp_canonical, he_source)["kp"]
    features = generator.prepare_source(image, kp_source)
    if timer:
        timer.add("generator", started)
    return SourceState(kp_canonical, kp_source, features)


@torch.inference_mode()
def drive_frames(
    state: SourceState,
    windows: torch.Tensor,
    mapping: MappingNet,
    generator: OcclusionAwareSPADEGenerator,
    yaw: torch.Tensor | None = None,
    pitch: torch.Tensor | None = None,
    roll: torch.Tensor | None = None,
    timer: StageTimer | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one step: windows (n, C, 27) -> (frames (n, 3, S, S), kp_driving (n, K, 3)).

    ``yaw``/``pitch``/``roll`` (n,) degrees override the decoded driving pose (free view).
    """
    started = time.perf_counter()
    he = mapping(windows)
    if timer:
        timer.add("mapping", started)
    started = time.perf_counter()
    kp_canonical = state.kp_canonical.expand(windows.shape[0], *state.kp_canonical.shape[1:])
    kp_driving = keypoint_transformation(kp_canonical, he, yaw, pitch, roll)["kp"]
    if timer:
        timer.add("keypoints", started)
    started = time.perf_counter()
    frames = generator.forward_cached(state.features, kp_driving)["prediction"]
    if timer:
        timer.add("generator", started)
    return frames, kp_driving


@torch.inference_mode()
def make_animation(
    source_image: torch.Tensor,
    source_semantics: torch.Tensor,
    target_semantics: torch.Tensor,
    kp_detector: KPDetector,
    mapping: MappingNet,
    generator: OcclusionAwareSPADEGenerator,
    yaw_c_seq: torch.Tensor | None = None,
    pitch_c_seq: torch.Tensor | None = None,
    roll_c_seq: torch.Tensor | None = None,
    timer: StageTimer | None = None,
) -> dict[str, torch.Tensor]:
    """The official loop's result: ``predictions`` (bs, L, 3, S, S) for windows (bs, L, C, 27).

    Also returns ``kp_canonical`` and ``kp_source`` (bs, K, 3) and ``kp_driving`` (bs, L, K, 3).
    """
    bs, steps = target_semantics.shape[:2]
    state = prepare_source(source_image, source_semantics, kp_detector, mapping, generator, timer)
    frames, driving = [], []
    for step in range(steps):
        pose = [None if seq is None else seq[:, step] for seq in (yaw_c_seq, pitch_c_seq, roll_c_seq)]
        out, kp = drive_frames(state, target_semantics[:, step], mapping, generator, *pose, timer=timer)
        frames.append(out)
        driving.append(kp)
        log.debug("rendered step %d/%d", step + 1, steps)
    expand = lambda t: t.expand(bs, *t.shape[1:])  # noqa: E731 - shared source rows back to batch size
    return {
        "predictions": torch.stack(frames, dim=1),
        "kp_canonical": expand(state.kp_canonical),
        "kp_source": expand(state.kp_source),
        "kp_driving": torch.stack(driving, dim=1),
    }

"""Loading the renderer's networks from the official checkpoint files, strictly and safely.

Files (see the render SPEC): ``mapping_00229-model.pth.tar`` (70-channel MappingNet, crop modes),
``mapping_00109-model.pth.tar`` (73-channel, full modes), ``facevid2vid_00189-model.pth.tar``
(generator, kp_detector, he_estimator) and ``SadTalker_V0.0.2_<size>.safetensors`` (kp_extractor
and generator under prefixes; it has no mapping or he_estimator). Pickles are read with
``weights_only=True``; every mismatch names the file and the keys.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from talkbridge.core.errors import CheckpointError
from talkbridge.core.sadtalker.files import FACEVID2VID_FILE, MAPPING_FILES, SIZES, combined_file_name
from talkbridge.core.sadtalker.checkpoints import load_strict, read_safetensors_prefix, read_torch_checkpoint
from talkbridge.core.sadtalker.precision import DEFAULT_PRECISION, cast_module, resolve_precision
from talkbridge.core.sadtalker.render.config import MappingConfig, RenderConfig
from talkbridge.core.sadtalker.render.generator import OcclusionAwareSPADEGenerator
from talkbridge.core.sadtalker.render.he_estimator import HEEstimator
from talkbridge.core.sadtalker.render.kp_detector import KPDetector
from talkbridge.core.sadtalker.render.mapping import MappingNet
from talkbridge.core.sadtalker.render.windows import uses_full_mapping

log = logging.getLogger(__name__)

combined_safetensors_name = combined_file_name  # the name this module's callers know


def load_mapping(path: str | os.PathLike, still: bool | None = None) -> MappingNet:
    """MappingNet from a ``mapping_*.pth.tar``; its width (70 or 73) is checked against ``still``."""
    path = Path(path)
    state = read_torch_checkpoint(path, "mapping")
    first = state.get("first.0.weight")
    if first is None or first.ndim != 3:
        raise CheckpointError("is not a MappingNet checkpoint (no first.0.weight)", path)
    channels = int(first.shape[1])
    if still is not None and channels != (73 if still else 70):
        wanted = MAPPING_FILES[73 if still else 70]
        raise CheckpointError(
            f"holds a {channels}-channel MappingNet but {'full' if still else 'crop/resize'} modes need "
            f"{73 if still else 70} channels ({wanted})",
            path,
        )
    net = MappingNet(MappingConfig(coeff_nc=channels))
    load_strict(net, state, path)
    return net.eval()


def load_facevid2vid(path: str | os.PathLike) -> tuple[KPDetector, OcclusionAwareSPADEGenerator, HEEstimator]:
    """The three face-vid2vid networks from the ``.pth.tar`` training checkpoint."""
    path = Path(path)
    kp, generator, he = KPDetector(), OcclusionAwareSPADEGenerator(), HEEstimator()
    load_strict(kp, read_torch_checkpoint(path, "kp_detector"), path)
    load_strict(generator, read_torch_checkpoint(path, "generator"), path)
    load_strict(he, read_torch_checkpoint(path, "he_estimator"), path)
    return kp.eval(), generator.eval(), he.eval()


def load_combined(path: str | os.PathLike) -> tuple[KPDetector, OcclusionAwareSPADEGenerator]:
    """KPDetector and generator from ``SadTalker_V0.0.2_<size>.safetensors``."""
    path = Path(path)
    kp, generator = KPDetector(), OcclusionAwareSPADEGenerator()
    load_strict(kp, read_safetensors_prefix(path, "kp_extractor"), path)
    load_strict(generator, read_safetensors_prefix(path, "generator"), path)
    return kp.eval(), generator.eval()


@dataclass
class FaceRenderModels:
    """The networks the renderer runs, on one device, in eval mode.

    ``precision`` (see :mod:`talkbridge.core.sadtalker.precision`) is the dtype of the generator's
    per-frame modules; MappingNet, the KPDetector and the generator's source-only part stay float32.
    """

    mapping: MappingNet
    kp_detector: KPDetector
    generator: OcclusionAwareSPADEGenerator
    device: torch.device = torch.device("cpu")
    precision: str = DEFAULT_PRECISION

    def to(self, device: str | torch.device) -> "FaceRenderModels":
        device = torch.device(device)
        for net in (self.mapping, self.kp_detector, self.generator):
            net.to(device)
        self.device = device
        return self

    def with_precision(self, precision: str, *, allow_cpu_fp16: bool = False) -> "FaceRenderModels":
        """Cast the generator's per-frame modules to ``precision`` in place (checked against the device).

        Going back to fp32 after a half cast does not restore the rounded weights: load again instead.
        """
        checked = resolve_precision(precision, self.device, allow_cpu_fp16=allow_cpu_fp16).name
        for net in self.generator.per_frame_modules():
            cast_module(net, checked)
        self.precision = checked
        return self

    @property
    def still_mapping(self) -> bool:
        return self.mapping.config.coeff_nc == 73

    @classmethod
    def from_checkpoint_dir(
        cls,
        folder: str | os.PathLike,
        size: int = 256,
        preprocess: str = "crop",
        device: str | torch.device = "cpu",
        prefer_safetensors: bool = True,
        precision: str = DEFAULT_PRECISION,
        accelerate: str = "off",
    ) -> "FaceRenderModels":
        """Pick files like the official code: the combined safetensors for ``size`` when present,
        else the face-vid2vid pickle (256 weights only); the mapping file by preprocess mode.
        ``precision`` and ``accelerate`` (``off`` | ``compile`` | ``cudagraphs``, see
        :mod:`.accelerate`) are checked first, so a bad value fails before any file is read."""
        from talkbridge.core.sadtalker.render.accelerate import accelerate as compile_models, check_accelerate

        folder = Path(folder)
        resolve_precision(precision, device)
        check_accelerate(accelerate, device)
        if size not in SIZES:
            raise CheckpointError(f"render size must be one of {SIZES}, got {size}")
        still = uses_full_mapping(preprocess)
        mapping = load_mapping(folder / MAPPING_FILES[73 if still else 70], still=still)
        combined = folder / combined_safetensors_name(size)
        if prefer_safetensors and combined.is_file():
            kp, generator = load_combined(combined)
        else:
            pickle = folder / FACEVID2VID_FILE
            if not pickle.is_file():
                raise CheckpointError(
                    f"no render weights: neither {combined.name} nor {FACEVID2VID_FILE} is in this folder", folder
                )
            if size != 256:
                log.warning("%s holds 256 weights only; rendering at %d with them", FACEVID2VID_FILE, size)
            kp, generator, _ = load_facevid2vid(pickle)
        return compile_models(cls(mapping, kp, generator).to(device).with_precision(precision), accelerate)

    @classmethod
    def untrained(cls, config: RenderConfig | None = None) -> "FaceRenderModels":
        """Randomly initialised networks (tests, benchmarks); never for real output."""
        config = config or RenderConfig.official()
        return cls(
            MappingNet(config.mapping).eval(),
            KPDetector(config.kp_detector).eval(),
            OcclusionAwareSPADEGenerator(config.generator).eval(),
        )

"""Shared helpers for the render and face tests: reference key files, recipe weights, tiny configs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkbridge.core.sadtalker.render.config import (
    DenseMotionConfig,
    GeneratorConfig,
    KPDetectorConfig,
    MappingConfig,
    RenderConfig,
)
from tests.golden_cases import GoldenCase, golden_root, load_recipe

RENDER_REFERENCE = golden_root() / "render"


def reference_keys(name: str) -> dict[str, list[int]]:
    """``render/keys/<name>.json``: the official state-dict layout, in order."""
    return json.loads((RENDER_REFERENCE / "keys" / f"{name}.json").read_text())


def golden_case(name: str) -> GoldenCase:
    folder = RENDER_REFERENCE / "golden" / name
    return GoldenCase(folder, json.loads((folder / "case.json").read_text()))


def recipe_state(module: torch.nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    """Recipe weights for ``module``'s own layout (no post-processing)."""
    recipe = load_recipe(RENDER_REFERENCE)
    shapes = {k: list(v.shape) for k, v in module.state_dict().items()}
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in recipe.recipe_state_dict(shapes, seed).items()}


def tiny_render_config(coeff_nc: int = 70) -> RenderConfig:
    """A structurally complete renderer small enough for behaviour tests at 64x64."""
    return RenderConfig(
        mapping=MappingConfig(coeff_nc=coeff_nc, descriptor_nc=32),
        kp_detector=KPDetectorConfig(block_expansion=4, max_features=32, num_blocks=3, reshape_channel=64, reshape_depth=4),
        generator=GeneratorConfig(
            feature_channel=4,
            block_expansion=8,
            max_features=16,
            reshape_channel=4,
            reshape_depth=4,
            num_resblocks=1,
            spade_hidden=8,
            spade_middle_blocks=1,
            dense_motion=DenseMotionConfig(block_expansion=4, max_features=16, num_blocks=2, reshape_depth=4, compress=2),
        ),
    )


def tiny_recipe_models(seed: int = 1, config: RenderConfig | None = None):
    """``FaceRenderModels`` of ``config`` (default: :func:`tiny_render_config`) filled with recipe weights."""
    from talkbridge.core.sadtalker.render.models import FaceRenderModels

    models = FaceRenderModels.untrained(config or tiny_render_config())
    for net in (models.mapping, models.kp_detector, models.generator):
        net.load_state_dict(recipe_state(net, seed))
    return models


def sn_u_x10(models):
    """The golden cases' ``sn_u_x10`` adjustment (generator ``weight_u`` x 10): a well-conditioned output."""
    with torch.no_grad():
        for name, tensor in models.generator.state_dict().items():
            if name.endswith("weight_u"):
                tensor.mul_(10.0)
    return models


def landmarks_y_down(case_name: str = "h_align_img") -> tuple[np.ndarray, np.ndarray]:
    """The 256x256 astronaut crop and its 68 landmarks in image pixels (y down)."""
    case = golden_case(case_name)
    image = case.inputs["image_u8"]
    lm = case.inputs["lm68_yup"].astype(np.float32).copy()
    lm[:, 1] = image.shape[0] - 1 - lm[:, 1]
    return image, lm


def write_landmarked_portrait(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Save the :func:`landmarks_y_down` crop at ``path`` as a user's image file (BGR on disk, as
    OpenCV writes it); returns its RGB pixels and 68 landmarks."""
    import cv2

    image, landmarks = landmarks_y_down()
    cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))
    return image, landmarks


def assert_frames_match(got: np.ndarray, want: np.ndarray, label: str = "") -> None:
    """Frames of one job rendered in different batches: within one grey level, on at most 0.1% of values.

    A row's result is not always independent of its position in a batch: on Xeon CPUs with AMX (one
    thread, fixed pass size), the GEMM behind small Linear layers (MappingNet's ``fc_t`` is the first)
    rounds a row's last bit by where the row sits, and now and then a value lands on the other side of
    a grey level. A wrong row (a mix-up between jobs) differs by far more, on most values.
    """
    assert got.shape == want.shape, f"{label}: shape {got.shape} != {want.shape}"
    difference = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert difference.max() <= 1, f"{label}: frames differ by up to {difference.max()} grey levels"
    changed = int(np.count_nonzero(difference))
    assert changed <= 0.001 * difference.size, f"{label}: {changed} of {difference.size} values differ"


def assert_float_frames_match(got: torch.Tensor, want: torch.Tensor) -> None:
    """Float frames of one job from different batches: equal up to last-bit rounding (see above)."""
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@dataclass(frozen=True)
class PortraitJobInputs:
    """What a SadTalker job test starts from: a landmarked portrait, its landmarks (also as a JSON
    file, as a user passes them), a speech clip and, when asked for, official-layout checkpoints."""

    folder: Path
    portrait: Path
    image: np.ndarray
    landmarks: np.ndarray
    landmarks_file: Path
    speech: Path
    checkpoints: Path | None


def portrait_job_inputs(
    folder: Path, seconds: float, seed: int, *, checkpoints: bool = True, render: bool = True, speech_name: str = "speech.wav"
) -> PortraitJobInputs:
    """Write :class:`PortraitJobInputs` into ``folder`` (``seconds`` of speech-like audio from ``seed``;
    ``render=False`` leaves the face-vid2vid and MappingNet weights out of the checkpoints)."""
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.speech import speech_like, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    portrait = folder / "portrait.png"
    image, landmarks = write_landmarked_portrait(portrait)
    landmarks_file = folder / "face.json"
    landmarks_file.write_text(json.dumps(landmarks.tolist()))
    speech = write_wav(folder / speech_name, speech_like(seconds, seed=seed))
    weights = write_official_checkpoint_dir(folder / "checkpoints", render=render) if checkpoints else None
    return PortraitJobInputs(folder, portrait, image, landmarks, landmarks_file, speech, weights)

"""Optional torch.compile / CUDA graphs for the renderer: off by default, same frames when on,
and a clear refusal when the compiler a mode needs is missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbridge.core.errors import InputError
from talkbridge.core.sadtalker.render import accelerate as accel
from talkbridge.core.sadtalker.render.renderer import FaceRenderer
from tests.render_helpers import sn_u_x10, tiny_recipe_models

SIZE = 64


def _inputs():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return image, rng.normal(0, 0.3, 73).astype(np.float32), rng.normal(0, 0.3, (5, 70)).astype(np.float32)


def test_off_leaves_the_eager_models_alone():
    models = tiny_recipe_models()
    assert accel.accelerate(models, "off") is models and not accel.is_accelerated(models)


def test_compiled_pass_renders_the_same_frames():
    image, first, coeffs = _inputs()
    models = sn_u_x10(tiny_recipe_models())
    eager = FaceRenderer(models, image, first, size=SIZE, batch_size=2, fixed_batch=True).render(coeffs)
    # aot_eager runs the full torch.compile capture (Dynamo + AOTAutograd) without needing a C++
    # compiler; inductor adds code generation, minutes on this CPU (see docs/performance.md).
    accel.accelerate(models, "compile", backend="aot_eager")
    assert accel.is_accelerated(models)
    compiled = FaceRenderer(models, image, first, size=SIZE, batch_size=2, fixed_batch=True).render(coeffs)
    assert np.abs(compiled.astype(int) - eager.astype(int)).max() <= 1
    assert float(eager.std()) > 40


def test_modes_are_checked_with_clear_errors(monkeypatch):
    with pytest.raises(InputError, match="unknown accelerate mode 'turbo'"):
        accel.check_accelerate("turbo")
    with pytest.raises(InputError, match="cudagraphs needs a CUDA device"):
        accel.check_accelerate("cudagraphs", "cpu")
    monkeypatch.setattr(accel.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match=r"needs a C\+\+ compiler \(g\+\+\).*accelerate off"):
        accel.accelerate(tiny_recipe_models(), "compile")
    assert accel.check_accelerate("compile", "cpu", backend="aot_eager") == "compile"


def test_loader_refuses_a_bad_mode_before_reading_files(tmp_path):
    from talkbridge.core.sadtalker.render.models import FaceRenderModels

    with pytest.raises(InputError, match="unknown accelerate mode"):
        FaceRenderModels.from_checkpoint_dir(tmp_path, accelerate="fast")

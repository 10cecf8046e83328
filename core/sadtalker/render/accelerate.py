"""Optional graph compilation of the renderer's per-frame pass: ``torch.compile`` and CUDA graphs.

Off by default and never required: eager mode is the reference. ``compile`` wraps the generator's
per-frame pass (dense motion + SPADE decoder, everything after the cached source work) in
``torch.compile``; ``cudagraphs`` uses its ``reduce-overhead`` mode, which also replays the pass as a
CUDA graph (CUDA only). Both want fixed shapes: use them with ``FaceRenderer(fixed_batch=True)`` or
``render_slices(pad_to=N)``, otherwise every new batch size compiles again.

The compiler's prerequisites are checked up front so a missing one is a clear :class:`InputError`
rather than a failure deep inside the first frame: TorchInductor needs a C++ compiler on CPU and
Triton on CUDA. Compiling the official-size generator takes minutes on a CPU; it pays off on a GPU
serving long jobs.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from typing import TYPE_CHECKING

import torch

from talkbridge.core.errors import InputError
if TYPE_CHECKING:  # annotations only: models.py imports this module when it loads networks
    from talkbridge.core.sadtalker.render.models import FaceRenderModels

log = logging.getLogger(__name__)

ACCELERATE_MODES = ("off", "compile", "cudagraphs")


def check_accelerate(mode: str, device: str | torch.device = "cpu", backend: str = "inductor") -> str:
    """The checked mode name, or an InputError saying what is missing and how to run without it."""
    key = str(mode).strip().lower()
    if key not in ACCELERATE_MODES:
        raise InputError(f"unknown accelerate mode {mode!r}: choose one of {', '.join(ACCELERATE_MODES)}")
    if key == "off":
        return key
    device = torch.device(device)
    if not hasattr(torch, "compile"):
        raise InputError(f"accelerate {key} needs torch.compile (torch >= 2.0); run with accelerate off")
    if key == "cudagraphs" and device.type != "cuda":
        raise InputError("accelerate cudagraphs needs a CUDA device; use accelerate compile or off on CPU")
    if backend == "inductor":
        if device.type == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            raise InputError(f"accelerate {key} on CPU needs a C++ compiler (g++) for TorchInductor; run with accelerate off")
        if device.type == "cuda" and importlib.util.find_spec("triton") is None:
            raise InputError(f"accelerate {key} on CUDA needs the triton package; run with accelerate off")
    return key


def accelerate(models: FaceRenderModels, mode: str = "compile", backend: str = "inductor") -> FaceRenderModels:
    """Compile ``models.generator``'s per-frame pass in place (``off``: unchanged); returns ``models``.

    ``backend`` is torch.compile's backend (tests use ``aot_eager``, which needs no compiler).
    Compilation happens lazily, on the first frames rendered.
    """
    key = check_accelerate(mode, models.device, backend)
    if key == "off":
        return models
    generator = models.generator
    eager = type(generator).forward_cached.__get__(generator)
    options = {"mode": "reduce-overhead"} if key == "cudagraphs" else {}
    generator.forward_cached = torch.compile(eager, backend=backend, dynamic=False, **options)
    log.info("renderer per-frame pass compiled (%s, backend %s)", key, backend)
    return models


def is_accelerated(models: FaceRenderModels) -> bool:
    """Whether :func:`accelerate` replaced the generator's per-frame pass."""
    return "forward_cached" in vars(models.generator)

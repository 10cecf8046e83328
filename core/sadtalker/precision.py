"""Numeric precision of the SadTalker networks: ``fp32`` (default, bit-faithful), ``fp16``, ``bf16``.

The policy is *cast*, not autocast: the heavy convolution stacks hold their weights in the half
dtype and run half activations, and every numerically delicate step converts to float32 explicitly
in the network code. Reasons: no per-call weight casts (autocast re-casts every weight on every
call, which costs launches at batch 1), half the weight memory, graphs that ``torch.compile`` and
CUDA graphs capture unchanged, and fp32 islands that do not depend on torch's per-version autocast
op lists.

What runs in the half dtype:

* renderer: the generator's per-frame modules (``OcclusionAwareSPADEGenerator.per_frame_modules``:
  dense motion's 3-D hourglass, mask and occlusion convs, the SPADE decoder's blocks and output conv);
* audio side: the two Wav2Lip audio encoders (batch norm folded), i.e. nearly all audio FLOPs.

What stays float32 (cheap, or where rounding would move keypoints or coordinates, or is magnified):

* MappingNet, pose bins -> degrees (a softmax over 66 bins), rotations and every keypoint;
* the KPDetector (its heatmap softmax has temperature 0.1) and the generator's source-only part
  (appearance volume, compress conv): once per portrait, and bf16 there alone costs ~5 dB;
* per frame, the bottleneck convs (``third``, ``fourth``) and the decoder's ``fc`` (1.7% of the
  per-frame FLOPs at 256): their activations sit on a per-channel offset about twice their spread,
  which the first SPADE instance norm removes, so their rounding is magnified (each alone in bf16:
  43-44 dB);
* the SPADE decoder's residual stream (each block's input and sum), instance-norm statistics, and
  in the middle blocks (64x64 maps at 256) also the SPADE modulation ``n + n * gamma + beta``;
  the convs get their inputs cast to the half dtype;
* the spectral-norm weights' W / sigma, fixed in float32 just before the cast
  (``SpectralNormConv2d.before_reduced_cast``): from the rounded W, u and v, sigma = u . (W v) is a
  cancelling sum whose error scales whole layers (alone: the bf16 decoder at 41.6 instead of 47.4 dB);
* Gaussian keypoint heatmaps, the sparse motion grids, the mask softmax and the composed
  deformation; every ``grid_sample`` runs in float32 (its input is upcast), because bf16 has only 8
  bits of mantissa and would move sample points by up to a quarter of a voxel at 512;
* the occlusion and output sigmoids;
* the audio side's ExpNet head (one linear layer) and the whole PoseVAE decoder;
* the 3DMM recon net (once per portrait; not affected by this option).

Quality (docs/performance.md): frames against fp32 on the golden recipe weights (``sn_u_x10``), gate
40 dB: bf16 41.9 dB at 256 on the official networks (35.1 dB before the per-frame float32 parts,
the residual stream and the W / sigma fix), 42.6 dB on ``bench/gpu.py``'s weights (was 34.9), 42.5 dB
on the tiny test renderer (was 30.9); fp16 56.8 dB on the tiny renderer (was 48.3). The price: bf16 renders at 1.74x fp32's speed on this CPU
(AVX512-BF16; official networks at 256, batch 4, 2 threads) instead of 1.81x, i.e. ~4% more time.
fp16 is the GPU choice (more headroom); bf16 the CPU choice.

In ``fp32`` every cast above is a no-op (``Tensor.to`` returns the tensor itself), ``cast_module``
casts nothing (so W / sigma is not fixed) and SPADE takes its reference expression, so outputs are
bit-identical to the code before this option existed (checked: every golden case, and the
generator's outputs equal the previous code's bit for bit).

Devices: ``bf16`` runs on CPU (fast where the CPU has AVX512-BF16 or AMX, otherwise emulated) and on
CUDA GPUs that support it (Ampere and later). ``fp16`` is refused on CPU: PyTorch's CPU half
convolutions are reference kernels, measured ~150x slower than fp32 here, so a CPU job would take
days; use ``bf16`` on CPU instead. Tests and the bench may still run fp16 on CPU on tiny models
(``allow_cpu_fp16=True``) to check its numerics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from talkbridge.core.errors import InputError

PRECISIONS = ("fp32", "fp16", "bf16")
DEFAULT_PRECISION = "fp32"
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


# Quality gates, measured on recipe weights (docs/performance.md has the figures and the cases).
FRAME_PSNR_GATE_DB = 40.0  # rendered uint8 frames against fp32, well-conditioned (sn_u_x10) weights
# Largest |difference| from fp32 allowed in the (T, 70) coefficients: 64 expression, then 6 pose values.
COEFF_TOLERANCE = {
    "fp32": {"expression": 0.0, "pose": 0.0},
    "fp16": {"expression": 1e-2, "pose": 1e-4},
    "bf16": {"expression": 8e-2, "pose": 1e-3},
}


def check_precision(name: str) -> str:
    """The canonical precision name for ``name`` (case-insensitive; ``half``, ``float16`` ... accepted).

    Raises :class:`InputError` naming the option and the valid values, so the CLI, the sidecar and the
    Blender panel can show it as is.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _DTYPES:
        raise InputError(f"unknown precision {name!r} (--precision): choose one of {', '.join(PRECISIONS)}")
    return key


def precision_dtype(name: str) -> torch.dtype:
    """The tensor dtype the half-capable networks run in for ``name``."""
    return _DTYPES[check_precision(name)]


@dataclass(frozen=True)
class Precision:
    """A checked precision for one device."""

    name: str
    device: torch.device

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.name]

    @property
    def is_reduced(self) -> bool:
        return self.name != "fp32"


def resolve_precision(name: str, device: str | torch.device = "cpu", *, allow_cpu_fp16: bool = False) -> Precision:
    """Check ``name`` against what ``device`` can run, with an error that says what to use instead."""
    key = check_precision(name)
    device = torch.device(device)
    if key == "fp16" and device.type == "cpu" and not allow_cpu_fp16:
        raise InputError(
            "precision fp16 (--precision fp16) needs a CUDA GPU: PyTorch's CPU half-precision convolutions "
            "are ~150x slower than fp32; use --precision bf16 (or fp32) on CPU"
        )
    if key == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(
            f"precision bf16 (--precision bf16) is not supported by {torch.cuda.get_device_name(device)}; "
            "use --precision fp16 or fp32"
        )
    return Precision(key, device)


def module_dtype(module: nn.Module) -> torch.dtype:
    """The floating dtype a module's parameters are stored in (float32 for parameter-less modules)."""
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def cast_module(module: nn.Module, name: str) -> nn.Module:
    """Cast a module's floating parameters and buffers to ``name``'s dtype, in place (fp32: unchanged).

    Submodules with a ``before_reduced_cast()`` method get it called first, while their weights are
    still float32 (the spectral-norm convs fix W / sigma there, see ``render.blocks``).
    """
    dtype = precision_dtype(name)
    if module_dtype(module) != dtype:
        for sub in module.modules():
            prepare = getattr(sub, "before_reduced_cast", None)
            if callable(prepare) and module_dtype(sub) == torch.float32:
                prepare()
        module.to(dtype)
    return module

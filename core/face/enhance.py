"""Optional GFPGAN face enhancement of rendered frames, as the official ``--enhancer gfpgan`` does.

GFPGAN is not a dependency: it needs the ``gfpgan`` package and its ``GFPGANv1.4.pth`` weights
(`talkbridge models download gfpgan`). Without either, asking for it fails before any work with a
message saying which is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from talkbridge.core.errors import InputError

WEIGHTS = "GFPGANv1.4.pth"


def gfpgan_weights() -> Path:
    from talkbridge.core.weights import WeightStore

    store = WeightStore()
    return store.path(store.entry(WEIGHTS))


class GfpganEnhancer:
    def __init__(self, weights: Path | None = None, device: str = "cpu") -> None:
        if importlib.util.find_spec("gfpgan") is None:
            raise InputError("--enhancer gfpgan needs the gfpgan package: pip install gfpgan")
        weights = Path(weights) if weights is not None else gfpgan_weights()
        if not weights.is_file():
            raise InputError("GFPGAN weights not found; run `talkbridge models download gfpgan`", weights)
        from gfpgan import GFPGANer

        self._model = GFPGANer(model_path=str(weights), upscale=1, arch="clean", channel_multiplier=2, device=device)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(n, H, W, 3) uint8 RGB -> the same, with faces restored and pasted back."""
        out = []
        for frame in frames:
            _, _, restored = self._model.enhance(frame[:, :, ::-1].copy(), has_aligned=False, only_center_face=False, paste_back=True)
            out.append(np.ascontiguousarray(restored[:, :, ::-1]))
        return np.stack(out)

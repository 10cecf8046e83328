"""Runs the OFFICIAL SadTalker audio-to-coefficient code from an extracted checkout, timed per stage.

Nothing here is official code: this imports it from the folder the user names (an extracted
``OpenTalker/SadTalker``, e.g. ``git archive HEAD src | tar -x``) and calls it as ``inference.py``
does: ``get_data`` (wav, mel, windows, blinks) then ``Audio2Coeff.generate`` (ExpNet, PoseVAE,
smoothing, the ``.mat`` write). Its own imports need ``librosa``, ``yacs``, ``scipy``, ``tqdm`` and
``safetensors`` in this interpreter (not talkbridge dependencies; see bench/audio2coeff.py).
"""

from __future__ import annotations

import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.io
import torch

STAGES = ("mel", "expnet", "posevae")


def _timed(totals: dict[str, float], stage: str, function: Callable) -> Callable:
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - start

    return run


@contextmanager
def _official_imports(root: Path):
    """The checkout's ``src`` package importable (bench/audio2coeff.py turns tqdm's bars off first)."""
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))


class OfficialAudio2Coeff:
    """The official models on CPU, loaded from the combined safetensors ``checkpoint``."""

    def __init__(self, root: str | Path, checkpoint: Path, work: Path) -> None:
        root = Path(root).resolve()
        if not (root / "src" / "test_audio2coeff.py").is_file():
            raise SystemExit(f"{root} is not an extracted OpenTalker/SadTalker checkout (no src/test_audio2coeff.py)")
        with _official_imports(root):
            from src.generate_batch import get_data  # type: ignore[import-not-found]
            from src.test_audio2coeff import Audio2Coeff  # type: ignore[import-not-found]

            config = root / "src" / "config"
            self.model = Audio2Coeff(
                {
                    "audio2pose_yaml_path": str(config / "auido2pose.yaml"),
                    "audio2exp_yaml_path": str(config / "auido2exp.yaml"),
                    "use_safetensor": True,
                    "checkpoint": str(checkpoint),
                },
                "cpu",
            )
        self.get_data = get_data
        self.work = work

    def run(self, wav: Path, first_frame: np.ndarray, seed: int) -> tuple[float, dict[str, float], np.ndarray]:
        """Seconds in total, seconds per stage, and the (T, 70) coefficients of one seeded run."""
        first_mat = self.work / "official_first_frame.mat"
        scipy.io.savemat(first_mat, {"coeff_3dmm": first_frame[None, :73]})
        random.seed(seed)  # the official blinks come from stdlib random, the pose latents from torch's
        torch.manual_seed(seed)
        totals: dict[str, float] = {}
        exp, pose = self.model.audio2exp_model, self.model.audio2pose_model
        exp_test, pose_test = exp.test, pose.test
        exp.test, pose.test = _timed(totals, "expnet", exp_test), _timed(totals, "posevae", pose_test)
        try:
            start = time.perf_counter()
            batch = _timed(totals, "mel", self.get_data)(str(first_mat), str(wav), "cpu", None)
            saved = self.model.generate(batch, str(self.work), 0, None)
            total = time.perf_counter() - start
        finally:
            exp.test, pose.test = exp_test, pose_test
        totals["other"] = total - sum(totals.values())
        coefficients = np.asarray(scipy.io.loadmat(saved)["coeff_3dmm"], np.float32)
        return total, totals, coefficients

"""Shared plumbing for golden cases: discovery, inputs, recipe weights, and the runner registry.

A golden case is a folder holding ``case.json`` (what ran, seed, tolerances), ``inputs.npz``,
``outputs.npz`` and side files, produced by the official SadTalker code with recipe weights. A runner
turns a case into our outputs; ``tests/golden_cases/check.py`` compares them with the official ones, for
``tests/test_golden.py`` and for ``bench/golden_device.py`` (the same cases on a GPU, without pytest).

Runners put their networks on :func:`golden_device` (``$TALKBRIDGE_GOLDEN_DEVICE``, default ``cpu``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO.parent / "shared" / "reference" / "sadtalker"
DEVICE_ENV = "TALKBRIDGE_GOLDEN_DEVICE"


def golden_root() -> Path:
    return Path(os.environ.get("TALKBRIDGE_GOLDEN_DIR", DEFAULT_ROOT))


def golden_device() -> "torch.device":
    """The device the runners put their networks on: ``$TALKBRIDGE_GOLDEN_DEVICE``, default ``cpu``.

    The references are float32, so on CUDA this also turns TF32 off (as ``SadTalkerModels`` does for
    fp32): with TF32, cuDNN convolutions and matmuls keep only fp16's mantissa and a faithful port
    would fail its tolerances for the wrong reason.
    """
    import torch

    name = os.environ.get(DEVICE_ENV, "").strip() or "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"${DEVICE_ENV}={name!r} is not a torch device ({error})") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"${DEVICE_ENV}={name!r} but torch {torch.__version__} sees no CUDA device")
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return device


@dataclass
class GoldenCase:
    folder: Path
    meta: dict

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def kind(self) -> str:
        """The ``network`` or ``function`` string that says what the official code ran."""
        return self.meta.get("network") or self.meta.get("function") or ""

    @property
    def seed(self) -> int | None:
        return self.meta.get("seed")

    @cached_property
    def inputs(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "inputs.npz", allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    @cached_property
    def expected(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "outputs.npz", allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def tolerance(self, output: str) -> tuple[float, float]:
        override = self.meta.get("per_output", {}).get(output, {})
        return float(override.get("atol", self.meta["atol"])), float(override.get("rtol", self.meta["rtol"]))

    def recipe_weights(self, key_shapes: dict[str, tuple[int, ...]], network: str | None = None) -> dict[str, np.ndarray]:
        """Recipe weights for a layout with this case's seed, with any ``recipe_postprocess`` applied."""
        recipe = load_recipe(self.folder)
        weights = recipe.recipe_state_dict({k: list(v) for k, v in key_shapes.items()}, self.seed)
        for rule in _postprocess_rules(self.meta.get("recipe_postprocess")):
            if network is not None and rule.get("network") not in (None, network):
                continue
            for key in weights:
                if key.endswith(rule["suffix"]):
                    weights[key] = (weights[key] * rule["multiply"]).astype(weights[key].dtype)
        return weights


def _postprocess_rules(spec) -> list[dict]:
    """``recipe_postprocess`` is ``{network, rules: [{suffix, multiply}, ...]}`` (or a list of those)."""
    if not spec:
        return []
    blocks = spec if isinstance(spec, list) else [spec]
    return [{**rule, "network": block.get("network")} for block in blocks for rule in block["rules"]]


def load_recipe(start: Path):
    """Import the ``recipe.py`` that sits in the nearest folder above a case."""
    for folder in [start, *start.parents]:
        candidate = folder / "recipe.py"
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("golden_recipe", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError(f"no recipe.py in any folder above {start}")


def discover_cases(root: Path) -> list[GoldenCase]:
    cases = []
    for case_file in sorted(root.rglob("case.json")):
        cases.append(GoldenCase(case_file.parent, json.loads(case_file.read_text())))
    return cases


Runner = Callable[[GoldenCase], dict[str, np.ndarray]]


@dataclass
class RunnerEntry:
    """Maps cases whose ``network``/``function`` matches to the code that reproduces them."""

    matches: Callable[[str], bool]
    run: Runner | None
    xfail_reason: str | None = None


def kind_startswith(*prefixes: str) -> Callable[[str], bool]:
    return lambda kind: any(kind.startswith(p) for p in prefixes)

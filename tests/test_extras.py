"""The install extras match the engines: lite has no torch (the add-on's Install Engine default),
SadTalker brings the pinned torch, Audio2Face the pinned ONNX Runtime, and the old names still work."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _expanded(extra: str) -> set[str]:
    """Every requirement an extra pulls in, following ``talkbridge[...]`` references."""
    found: set[str] = set()
    for requirement in EXTRAS[extra]:
        nested = re.fullmatch(r"talkbridge\[([^\]]+)\]", requirement)
        if nested:
            for name in nested.group(1).split(","):
                found |= _expanded(name.strip())
        else:
            found.add(requirement)
    return found


def _names(requirements: set[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_lite_needs_no_torch_and_no_engine_needs_an_unpinned_one():
    lite = _names(_expanded("lite"))
    assert {"scipy", "soundfile", "soxr", "pocketsphinx", "opencv-python-headless"} <= lite
    assert not lite & {"torch", "torchvision", "onnxruntime", "librosa", "safetensors"}
    for extra in EXTRAS:
        torch = [r for r in _expanded(extra) if _names({r}) == {"torch"}]
        assert torch in ([], ["torch==2.13.0"]), (extra, torch)


def test_each_engine_extra_builds_on_lite():
    assert _expanded("lite") <= _expanded("sadtalker") and "torch==2.13.0" in _expanded("sadtalker")
    assert _expanded("lite") <= _expanded("audio2face")
    assert any(re.fullmatch(r"onnxruntime==\d+\.\d+\.\d+", r) for r in _expanded("audio2face"))
    assert "torch" not in _names(_expanded("audio2face"))


def test_the_old_engine_and_all_extras_keep_working():
    assert _expanded("engine") == _expanded("lite") | _expanded("sadtalker")
    assert _expanded("engine") <= _expanded("all")
    assert {"pygltflib", "face-alignment"} <= _names(_expanded("all"))

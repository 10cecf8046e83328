"""Ray is an optional extra: the core, the exporters, the bridge and the Blender add-on never import it.

Only ``talkbridge.cluster`` (and what it runs) may import ray, and only when a Ray backend is used, so
the add-on's bundled client and a plain ``pip install talkbridge[all]`` work without it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RAY_FREE_FOLDERS = ("core", "exporters", "bridge", "addon", "talkbridge/batch", "talkbridge/cli")


def ray_imports(path: Path) -> list[str]:
    """``file:line`` for every import of ray (or a ray submodule) in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(name == "ray" or name.startswith("ray.") for name in names):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("folder", RAY_FREE_FOLDERS)
def test_ray_free_layers_have_no_ray_import(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"{folder} has no Python files: the layer list is stale"
    offenders = [hit for path in files for hit in ray_imports(path)]
    assert offenders == []


def test_the_scan_finds_a_ray_import(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from ray.util import queue\n    import numpy, ray\n")
    assert ray_imports(sample) == ["sample.py:2", "sample.py:3"]


def test_importing_the_client_engines_and_batch_loads_no_ray():
    code = (
        "import sys\n"
        "import talkbridge.core.engine, talkbridge.core.lite, talkbridge.bridge.client, talkbridge.bridge.server\n"
        "import talkbridge.exporters.motion_file, talkbridge.batch, talkbridge.cli\n"
        "from talkbridge.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"

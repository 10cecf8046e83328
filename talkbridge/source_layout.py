"""Where each package's source lives in a checkout: pyproject.toml's ``[tool.setuptools.package-dir]``.

That table is the one statement of the mapping (``talkbridge.core`` -> ``core/`` and so on). The
architecture test walks these folders, and the extension build copies them, so neither can drift from
what setuptools installs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_folders(root: Path = ROOT) -> dict[str, Path]:
    """Import name -> source folder, from ``root/pyproject.toml``."""
    table = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return {name: root / folder for name, folder in table["tool"]["setuptools"]["package-dir"].items()}

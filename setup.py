"""Lists the packages under each source folder that pyproject.toml's ``[tool.setuptools.package-dir]``
maps into the ``talkbridge`` namespace (that table is the one statement of the mapping; setuptools
applies it, this file only finds the sub-packages below each folder).
"""
import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]


def _packages() -> list[str]:
    found = []
    for namespace, folder in PACKAGE_DIR.items():
        found.append(namespace)
        found.extend(f"{namespace}.{sub}" for sub in find_packages(str(ROOT / folder)))
    return found


setup(
    packages=_packages(),
    package_data={"": ["*.json", "*.txt", "*.toml", "*.wav", "*.png", "*.md"]},
)

"""Where the add-on's private engine environment lives and what installing it runs (no bpy).

Install Engine makes a virtual environment with Blender's own Python inside the extension's user
folder and pip-installs the talkbridge wheel the extension zip carries, with the chosen engines'
extras, into it. Everything here is plain path and argument logic, with the operating system passed
in, so the Windows and macOS layouts are unit-tested on Linux:

* a venv keeps its interpreter in ``Scripts/python.exe`` on Windows and ``bin/python`` elsewhere;
* SadTalker's torch comes from PyTorch's CUDA index on Windows and Linux when an NVIDIA GPU is seen
  (``nvidia-smi`` on PATH), from its CPU index on Linux without one (PyPI's Linux torch is the large
  CUDA build), and from PyPI otherwise (Windows without NVIDIA and macOS get CPU/MPS builds there);
* the environment counts as installed only when its completion marker, written as the very last
  step, is there and names this add-on's talkbridge version, so a failed or cancelled install is
  never taken for a good one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_FOLDER = "env"  # the venv, inside the extension's user folder ("engine")
MARKER_NAME = "talkbridge-engine.json"  # written last: its presence means "complete"
ENGINES = ("lite", "sadtalker", "audio2face")
TORCH_PIN = "torch==2.13.0"
CUDA_TORCH_INDEX = "https://download.pytorch.org/whl/cu128"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")


def os_kind(platform: str | None = None) -> str:
    """``windows``, ``macos`` or ``linux`` for a ``sys.platform`` value (default: this machine's)."""
    platform = sys.platform if platform is None else platform
    if platform.startswith("win"):
        return "windows"
    if platform == "darwin":
        return "macos"
    return "linux"


def env_python(env: Path, platform: str | None = None) -> Path:
    """The interpreter of a venv at ``env``: ``Scripts/python.exe`` on Windows, ``bin/python`` elsewhere."""
    if os_kind(platform) == "windows":
        return env / "Scripts" / "python.exe"
    return env / "bin" / "python"


def env_script(env: Path, name: str, platform: str | None = None) -> Path:
    """A console script of the venv (``Scripts/NAME.exe`` on Windows, ``bin/NAME`` elsewhere)."""
    if os_kind(platform) == "windows":
        return env / "Scripts" / f"{name}.exe"
    return env / "bin" / name


def talkbridge_argv(env: Path, platform: str | None = None) -> list[str]:
    """How to run the env's talkbridge: its Python with ``-m talkbridge.cli``.

    Why not the console script: the module form needs no launcher (.exe shims on Windows, shebangs
    elsewhere), so it keeps working on every platform however the env was made.
    """
    return [str(env_python(env, platform)), "-m", "talkbridge.cli"]


def torch_index(platform: str | None, nvidia_gpu: bool) -> str | None:
    """The index SadTalker's torch comes from; None means the default index (PyPI).

    Windows and Linux with an NVIDIA GPU: PyTorch's CUDA builds. Linux without one: the CPU builds
    (PyPI's Linux wheel bundles CUDA, gigabytes an artist without NVIDIA cannot use). Windows
    without NVIDIA and macOS: PyPI already serves the CPU (and Apple MPS) builds.
    """
    kind = os_kind(platform)
    if kind == "macos":
        return None
    if nvidia_gpu:
        return CUDA_TORCH_INDEX
    return CPU_TORCH_INDEX if kind == "linux" else None


def has_nvidia_gpu(which=shutil.which) -> bool:
    """Whether NVIDIA's driver tool ``nvidia-smi`` is on PATH (installed with every NVIDIA driver)."""
    return which("nvidia-smi") is not None


def extras_for(engines: list[str] | tuple[str, ...]) -> list[str]:
    """The extras to install for the chosen engines; lite is always there (the others build on it)."""
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    return ["lite", *[e for e in ENGINES if e in engines and e != "lite"]]


@dataclass(frozen=True)
class Step:
    """One command of the install: what the panel shows while it runs, and its argv."""

    title: str
    argv: tuple[str, ...]


def install_steps(
    env: Path,
    base_python: str,
    wheel: Path,
    engines: list[str] | tuple[str, ...] = ("lite",),
    platform: str | None = None,
    nvidia_gpu: bool = False,
    extra_requirements: tuple[str, ...] = (),
) -> list[Step]:
    """The commands that make the environment, in order (the completion marker is written after them).

    ``extra_requirements`` are further pip requirements for the same install step (a caller that
    needs one more package; the tests pass one that does not exist to see a pip failure reported).
    """
    extras = extras_for(engines)
    python = str(env_python(env, platform))
    steps = [Step("Creating the environment", (base_python, "-m", "venv", str(env)))]
    if "sadtalker" in extras:
        index = torch_index(platform, nvidia_gpu)
        where = ("--index-url", index) if index else ()
        label = "CUDA" if index == CUDA_TORCH_INDEX else "CPU" if index == CPU_TORCH_INDEX else "default"
        steps.append(Step(f"Installing torch ({label} build)", (python, "-m", "pip", "install", *PIP_FLAGS, *where, TORCH_PIN)))
    requirement = f"{wheel}[{','.join(extras)}]"
    steps.append(Step(f"Installing talkbridge ({', '.join(extras)})",
                      (python, "-m", "pip", "install", *PIP_FLAGS, requirement, *extra_requirements)))
    check = "import talkbridge.cli, talkbridge.core.lite.engine, talkbridge.bridge.server"
    steps.append(Step("Checking the engine", (python, "-c", check)))
    return steps


@dataclass(frozen=True)
class EngineEnv:
    """A complete private environment (its marker was read and matches)."""

    path: Path
    version: str
    engines: tuple[str, ...]

    def argv(self, platform: str | None = None) -> list[str]:
        return talkbridge_argv(self.path, platform)


def write_marker(env: Path, version: str, engines: list[str] | tuple[str, ...], platform: str | None = None) -> Path:
    """Mark ``env`` complete (the install's last act); written to a temporary name, then renamed."""
    marker = env / MARKER_NAME
    temp = marker.with_suffix(".partial")
    payload = {"talkbridge": version, "engines": list(engines), "python": str(env_python(env, platform))}
    temp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(temp, marker)
    return marker


def find_env(env: Path, version: str, platform: str | None = None) -> EngineEnv | None:
    """The environment at ``env`` if it is complete for this talkbridge ``version``, else None.

    Checked on every use, not trusted from memory: the marker must parse, name this version (an
    env from an older add-on would run older code than the add-on speaks) and the interpreter it
    names must still exist.
    """
    why = env_problem(env, version, platform)
    if why is not None:
        log.debug("no usable engine environment at %s: %s", env, why)
        return None
    data = json.loads((env / MARKER_NAME).read_text(encoding="utf-8"))
    return EngineEnv(env, data["talkbridge"], tuple(data.get("engines", ("lite",))))


def env_problem(env: Path, version: str, platform: str | None = None) -> str | None:
    """Why ``env`` is not a usable environment (for the preferences), or None when it is."""
    marker = env / MARKER_NAME
    if not env.exists():
        return "not installed"
    if not marker.is_file():
        return "incomplete (an install was cancelled or failed): install again or remove it"
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its completion marker is unreadable: install again"
    if not isinstance(data, dict) or data.get("talkbridge") != version:
        found = data.get("talkbridge") if isinstance(data, dict) else None
        return f"made for talkbridge {found}, this add-on is {version}: install again"
    if not env_python(env, platform).is_file():
        return f"its Python ({env_python(env, platform)}) is missing: install again"
    return None

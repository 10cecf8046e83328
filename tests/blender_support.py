"""Shared pieces of the Blender tests, for whichever bpy runs them (4.5 in the project venv, 5.x in
``.venv-blender5``).

A Blender venv holds only bpy, pytest and the add-on's bundled wheels (pyzmq, the talkbridge base
package), so everything that needs the engines or the exporters (the sidecar, the glTF head, the
lite reference motion, building the extension zip) runs in the *engine* Python: the project venv.
Run as ``python -m tests.blender_support inputs FOLDER`` (in the engine Python) it writes the
scenario inputs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_python() -> str:
    """The Python with talkbridge's engine extra: ``$TALKBRIDGE_ENGINE_PYTHON``, this one, or the project venv's."""
    chosen = os.environ.get("TALKBRIDGE_ENGINE_PYTHON")
    if chosen:
        return chosen
    if importlib.util.find_spec("scipy") is not None and importlib.util.find_spec("pygltflib") is not None:
        return sys.executable
    venv = ROOT / ".venv" / "bin" / "python"
    assert venv.is_file(), (
        f"this Python ({sys.executable}) lacks the engine extra and {venv} does not exist: run ./scripts/dev setup "
        "or set TALKBRIDGE_ENGINE_PYTHON to a Python with `pip install -e .[all]`"
    )
    return str(venv)


def blender_python() -> str:
    """The running Python's version as the build's ``--python`` names it ("3.11")."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def bpy_version() -> tuple[int, int, int]:
    import bpy  # noqa: F401 - the Blender venv's bpy; fails clearly when setup did not install it

    return tuple(bpy.app.version)


def bpy_resources() -> Path:
    """bpy's bundled resources folder (``.../bpy/5.3``), named after ``bpy.app.version``."""
    spec = importlib.util.find_spec("bpy")
    assert spec is not None and spec.origin, "bpy is not installed: ./scripts/dev setup installs it"
    major, minor, _ = bpy_version()
    folder = Path(spec.origin).parent / f"{major}.{minor}"
    assert folder.is_dir(), folder
    return folder


def blender_ext_cli() -> Path:
    """Blender's extension command line (``blender --command extension``'s script) in this bpy."""
    script = bpy_resources() / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert script.is_file(), script
    return script


def run_engine(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the engine Python with ``args`` in the checkout; fail with its output when it fails."""
    done = subprocess.run([engine_python(), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def repack_pyzmq(cache: Path) -> Path:
    """This environment's pyzmq as a wheel in ``cache`` (the one the running Blender's zip must bundle)."""
    from importlib import metadata

    from talkbridge.extension_build import pyzmq_version, repack_installed

    pinned, installed = pyzmq_version(), metadata.version("pyzmq")
    assert installed == pinned, (
        f"{sys.executable} has pyzmq {installed}, but the add-on bundles pyzmq {pinned} (blender_manifest.toml): "
        f"pip install pyzmq=={pinned} in this venv (./scripts/dev setup does)"
    )
    cache.mkdir(parents=True, exist_ok=True)
    return repack_installed("pyzmq", cache)


def build_local_zip(output: Path, python: str | None = None) -> Path:
    """Build the local platform's zip for this Python's Blenders, offline, with this environment's pyzmq."""
    repack_pyzmq(output.parent / "wheel-cache")
    done = run_engine([
        "-m", "talkbridge.cli", "-q", "addon", "build", "-o", str(output), "--platform", "local", "--offline",
        "--wheel-cache", str(output.parent / "wheel-cache"), "--python", python or blender_python(),
    ])
    zips = [Path(line) for line in done.stdout.splitlines() if line.endswith(".zip")]
    assert len(zips) == 1 and zips[0].is_file(), done.stdout
    return zips[0]


def isolated_site(folder: Path) -> Path:
    """A site folder exposing only bpy (and what bpy itself imports) from this environment.

    talkbridge and pyzmq must come from the installed zip, exactly as for an artist.
    """
    import bpy  # noqa: F401 - fails clearly when setup did not install it
    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    folder.mkdir()
    for name in ("bpy", "numpy", "numpy.libs"):
        if (site / name).exists():
            (folder / name).symlink_to(site / name)
    return folder


def blender_env(work: Path) -> dict[str, str]:
    """Environment for a Blender subprocess: a private user folder and temp folder, no PYTHON*/BLENDER_* leaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BLENDER_"))}
    env["BLENDER_USER_RESOURCES"] = str(work / "user")
    env["TMPDIR"] = str(work / "tmp")  # frames of unsaved files go to the system temp folder: keep them here
    (work / "tmp").mkdir(exist_ok=True)
    return env


def run_blender_script(work: Path, script: Path, config: dict, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``script`` in a clean Blender Python (``-S -s`` plus :func:`isolated_site`) with ``config`` as its JSON argument.

    Only bpy and numpy come from this environment, so everything else the script imports comes
    from the installed extension, as for an artist.
    """
    (work / "config.json").write_text(json.dumps(config))
    site = isolated_site(work / "site")
    launcher = (
        "import sys; sys.path.append(sys.argv[1]); sys.argv = sys.argv[2:];"
        "import runpy; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-S", "-s", "-c", launcher, str(site), str(script), str(work / "config.json")],
        cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
    )


def run_addon_script(script: str, packages: Path, timeout: float = 150) -> dict:
    """Run ``script`` in a fresh bpy subprocess of this Python with the checkout's ``addon/`` importable
    as ``talkbridge_addon`` (from ``packages``, passed as its first argument); returns the JSON it
    printed on its ``RESULT`` line, failing with its output when it printed none."""
    (packages / "talkbridge_addon").symlink_to(ROOT / "addon", target_is_directory=True)
    try:
        done = subprocess.run([sys.executable, "-c", script, str(packages)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as error:
        said = (error.stdout or b"")[-2000:].decode(errors="replace") + (error.stderr or b"")[-2000:].decode(errors="replace")
        raise AssertionError(f"the Blender script did not finish within {timeout} s:\n{said}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def write_inputs(folder: Path) -> dict:
    """Scenario inputs (engine Python only): the mannequin GLB, speech, a portrait and the lite reference motion."""
    import numpy as np

    from talkbridge.core.engine import MotionRequest
    from talkbridge.core.lite.engine import LiteEngine
    from talkbridge.core.lite.mannequin import build_mannequin
    from talkbridge.core.lite.samples import write_portrait
    from talkbridge.core.motion import Motion
    from talkbridge.exporters.gltf import write_head_glb
    from tests.speech import speech_like, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    inputs = {
        "head": str(write_head_glb(build_mannequin(), folder / "head.glb")),
        "audio": str(write_wav(folder / "speech.wav", speech_like(4.0, seed=3))),
        "long_audio": str(write_wav(folder / "long.wav", speech_like(12.0, seed=4))),
        "image": str(write_portrait(folder / "portrait.png")),
    }
    chunks = list(LiteEngine().stream_motion(MotionRequest(audio=Path(inputs["audio"]), chunk_frames=50)))
    motion = Motion.from_chunks(chunks, engine="lite", engine_version="1.0")
    np.savez(folder / "reference.npz", arkit=motion.arkit, pose=motion.pose)
    inputs["reference"] = str(folder / "reference.npz")
    return inputs


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "inputs":
        sys.exit("usage: python -m tests.blender_support inputs FOLDER")
    print(json.dumps(write_inputs(Path(sys.argv[2]))))

"""The extension manifest and `talkbridge addon build`: schema rules, per-platform and per-Python
zips, bundled wheels, the repository index.

Runs in the project venv (bpy 4.5, Python 3.11) and in ``.venv-blender5`` (bpy 5.3, Python 3.13).
Builds the local platform's zip for this Python offline (pyzmq repacked from this environment), so
no network is needed, and checks it with this bpy's own validator; the full set (every platform,
both Pythons) is built from stand-in wheels to check names, version ranges and ``index.json``
against Blender's ``server-generate``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from talkbridge import __version__
from talkbridge.cli import main
from talkbridge import extension_build as build_command
from tests import blender_support

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}


def _terse(text: str) -> bool:
    """Blender's rule for taglines and permission reasons: short, no trailing punctuation."""
    return 0 < len(text) <= 64 and text == text.strip() and text[-1] not in ".,;:!?"


def test_manifest_follows_the_schema_rules():
    m = MANIFEST
    assert m["schema_version"] == "1.0.0"
    assert re.fullmatch(r"[a-z][a-z0-9_]*", m["id"]) and m["type"] == "add-on"
    assert m["version"] == __version__ and re.fullmatch(r"\d+\.\d+\.\d+", m["version"])
    assert _terse(m["tagline"]) and m["maintainer"].strip() and m["name"].strip()
    assert m["license"] and all(item.startswith("SPDX:") for item in m["license"])
    assert tuple(int(x) for x in m["blender_version_min"].split(".")) >= (4, 4, 0)  # channelbag API
    assert sorted(m["platforms"]) == sorted(build_command.PLATFORMS)
    assert set(m["permissions"]) == {"network", "files"} <= PERMISSIONS
    assert all(_terse(reason) for reason in m["permissions"].values())


def test_manifest_wheels_cover_every_platform_and_python_with_one_pyzmq_and_the_client():
    wheels = [Path(w).name for w in MANIFEST["wheels"]]
    assert all(w.startswith("./wheels/") and w.endswith(".whl") for w in MANIFEST["wheels"])
    assert all(5 <= len(name[:-4].split("-")) <= 6 for name in wheels)
    assert f"talkbridge-{__version__}-py3-none-any.whl" in wheels
    pyzmq = [w for w in wheels if w.startswith("pyzmq-")]
    assert len({w.split("-")[1] for w in pyzmq}) == 1  # one pinned release
    for platform in MANIFEST["platforms"]:
        for python in build_command.TARGETS:
            covering = [w for w in pyzmq if platform in build_command.wheel_platforms(w) and build_command.wheel_fits_python(w, python)]
            assert len(covering) == 1, (platform, python, covering)
    assert all("-cp311-cp311-" in w or "-abi3-" in w for w in pyzmq)


def test_the_targets_split_blender_releases_by_their_python():
    old, new = build_command.TARGETS["3.11"], build_command.TARGETS["3.13"]
    assert (old.blender_min, old.blender_max) == ("4.4.0", "5.1.0")  # 4.4 .. 5.0 embed Python 3.11
    assert (new.blender_min, new.blender_max) == ("5.1.0", None)  # 5.1 and later embed Python 3.13
    assert old.label != new.label


@pytest.mark.parametrize(
    "name, python, fits",
    [
        ("pyzmq-27.3.0-cp311-cp311-win_amd64.whl", "3.11", True),
        ("pyzmq-27.3.0-cp311-cp311-win_amd64.whl", "3.13", False),
        ("pyzmq-27.3.0-cp312-abi3-win_amd64.whl", "3.13", True),
        ("pyzmq-27.3.0-cp312-abi3-win_amd64.whl", "3.11", False),  # stable ABI from 3.12 on
        ("pyzmq-27.3.0-cp313-cp313-win_amd64.whl", "3.13", True),
        ("talkbridge-0.1.0-py3-none-any.whl", "3.11", True),
    ],
)
def test_wheel_python_matching(name, python, fits):
    assert build_command.wheel_fits_python(name, python) is fits


@pytest.mark.parametrize(
    "name, expected",
    [
        ("pyzmq-27.3.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl", {"linux-x64"}),
        ("pyzmq-27.3.0-cp311-cp311-win_amd64.whl", {"windows-x64"}),
        ("pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl", {"macos-x64", "macos-arm64"}),
        ("pyzmq-27.3.0-cp311-cp311-macosx_11_0_arm64.whl", {"macos-arm64"}),
        ("pyzmq-27.3.0-cp312-abi3-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl", {"linux-x64"}),
        ("talkbridge-0.1.0-py3-none-any.whl", set(build_command.PLATFORMS)),
    ],
)
def test_wheel_platform_mapping(name, expected):
    assert build_command.wheel_platforms(name) == expected


@pytest.mark.parametrize("python", list(build_command.TARGETS))
def test_manifest_is_narrowed_per_platform_and_blender_range(python):
    text = (ROOT / "blender_manifest.toml").read_text()
    target = build_command.TARGETS[python]
    narrowed = tomllib.loads(build_command.manifest_for_platform(text, "windows-x64", ["a-1-py3-none-any.whl"], target))
    assert narrowed["platforms"] == ["windows-x64"] and narrowed["wheels"] == ["./wheels/a-1-py3-none-any.whl"]
    assert narrowed["blender_version_min"] == target.blender_min and narrowed.get("blender_version_max") == target.blender_max
    ranges = ("platforms", "wheels", "blender_version_min", "blender_version_max")
    assert {k: v for k, v in narrowed.items() if k not in ranges} == {k: v for k, v in MANIFEST.items() if k not in ranges}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return blender_support.build_local_zip(tmp_path_factory.mktemp("build") / "dist")


def test_build_writes_an_installable_zip_with_every_listed_wheel(built):
    platform = build_command.local_platform()
    target = build_command.TARGETS[blender_support.blender_python()]
    assert built.name == f"talkbridge-{__version__}-{target.label}-{platform.replace('-', '_')}.zip"
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        assert manifest["platforms"] == [platform]
        assert manifest["blender_version_min"] == target.blender_min and manifest.get("blender_version_max") == target.blender_max
        assert len(manifest["wheels"]) == 2
        for wheel in manifest["wheels"]:
            assert wheel.removeprefix("./") in names, wheel
            assert platform in build_command.wheel_platforms(Path(wheel).name)
            assert build_command.wheel_fits_python(Path(wheel).name, blender_support.blender_python())
            with zipfile.ZipFile(archive.open(wheel.removeprefix("./"))) as inner:
                assert inner.testzip() is None and any(n.endswith(".dist-info/RECORD") for n in inner.namelist())
        assert {"__init__.py", "apply.py", "runtime.py", "operators.py", "panel.py"} <= names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        client_wheel = next(w for w in manifest["wheels"] if "talkbridge-" in w)
        with zipfile.ZipFile(archive.open(client_wheel.removeprefix("./"))) as inner:
            inner_names = set(inner.namelist())
            assert {"talkbridge/bridge/client.py", "talkbridge/exporters/naming.py", "talkbridge/exporters/gltf/pose.py"} <= inner_names
            assert not [n for n in inner_names if n.startswith(("core/", "bridge/", "exporters/"))]  # no bare top-level packages


def test_blenders_own_validator_accepts_the_zip(built):
    validator = blender_support.blender_ext_cli()  # this bpy's, found through bpy.app.version
    result = subprocess.run([sys.executable, str(validator), "validate", str(built)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Success" in result.stdout, result.stdout + result.stderr


def test_build_refuses_to_replace_a_zip_and_explains_missing_wheels(built, tmp_path, caplog):
    before = built.read_bytes()
    python = blender_support.blender_python()
    code = main(["addon", "build", "-o", str(built.parent), "--platform", "local", "--python", python, "--offline",
                 "--wheel-cache", str(tmp_path)])
    assert code == 1 and "already exists" in caplog.text and built.read_bytes() == before
    caplog.clear()
    other = next(p for p in build_command.PLATFORMS if p != build_command.local_platform())
    code = main(["addon", "build", "-o", str(tmp_path), "--platform", other, "--offline", "--wheel-cache", str(tmp_path / "empty")])
    assert code == 1 and "no pyzmq" in caplog.text and other in caplog.text and "without --offline" in caplog.text
    assert not list(tmp_path.glob("*.zip"))


@pytest.fixture(scope="module")
def full_set(tmp_path_factory):
    """Every platform x both Pythons, offline, from stand-ins named like the manifest's pyzmq wheels."""
    work = tmp_path_factory.mktemp("full")
    real = blender_support.repack_pyzmq(work / "real")
    cache = work / "cache"
    cache.mkdir()
    for wheel in MANIFEST["wheels"]:
        if "/pyzmq-" in wheel:
            shutil.copy(real, cache / Path(wheel).name)
    done = blender_support.run_engine(["-m", "talkbridge.cli", "-q", "addon", "build", "-o", str(work / "dist"), "--offline",
                                       "--wheel-cache", str(cache)])
    return work / "dist", done.stdout.split()


def test_every_platform_gets_one_zip_per_blender_python_with_its_range(full_set):
    dist, printed = full_set
    zips = sorted(dist.glob("*.zip"))
    assert sorted(Path(p).name for p in printed if p.endswith(".zip")) == [z.name for z in zips]
    assert len(zips) == len(build_command.PLATFORMS) * len(build_command.TARGETS) == len({z.name for z in zips})
    seen = set()
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        target = next(t for t in build_command.TARGETS.values() if f"-{t.label}-" in path.name)
        (platform,) = manifest["platforms"]
        assert path.name.endswith(platform.replace("-", "_") + ".zip")
        assert manifest["blender_version_min"] == target.blender_min and manifest.get("blender_version_max") == target.blender_max
        pyzmq = [Path(w).name for w in manifest["wheels"] if "/pyzmq-" in w]
        assert len(pyzmq) == 1 and build_command.wheel_fits_python(pyzmq[0], target.python)
        assert platform in build_command.wheel_platforms(pyzmq[0])
        seen.add((platform, target.python))
    assert len(seen) == len(zips)


def test_the_repository_index_matches_blenders_server_generate(full_set, tmp_path):
    dist, printed = full_set
    assert str(dist / "index.json") in printed
    ours = json.loads((dist / "index.json").read_text())
    repo = tmp_path / "repo"
    repo.mkdir()
    for path in dist.glob("*.zip"):
        shutil.copy(path, repo / path.name)
    result = subprocess.run([sys.executable, str(blender_support.blender_ext_cli()), "server-generate", "--repo-dir", str(repo)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    theirs = json.loads((repo / "index.json").read_text())
    defaults = {"assetlib_auth_method": "PER_LIBRARY"}  # newer Blenders write it; readers default to it
    assert {k: v for k, v in theirs.items() if k != "data" and defaults.get(k) != v} == {k: v for k, v in ours.items() if k != "data"}
    key = lambda row: row["archive_url"]  # noqa: E731 - Blender lists in directory order
    assert sorted(ours["data"], key=key) == sorted(theirs["data"], key=key)
    assert [list(row) for row in sorted(ours["data"], key=key)] == [list(row) for row in sorted(theirs["data"], key=key)]
    ranges = {(row["blender_version_min"], row.get("blender_version_max"), tuple(row["python_versions"])) for row in ours["data"]}
    assert ranges == {("4.4.0", "5.1.0", ("3.11",)), ("5.1.0", None, ("3",))}

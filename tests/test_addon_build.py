"""The extension manifest and `talkbridge addon build`: schema rules, per-platform zips, bundled wheels.

Builds only the local platform, offline (pyzmq repacked from this environment), so no network is
needed; the other platforms' wheels are checked through the manifest and the platform mapping.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from talkbridge import __version__
from talkbridge.cli import main
from talkbridge.cli.commands import addon as build_command

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


def test_manifest_wheels_cover_every_platform_with_one_pyzmq_and_the_client():
    wheels = [Path(w).name for w in MANIFEST["wheels"]]
    assert all(w.startswith("./wheels/") and w.endswith(".whl") for w in MANIFEST["wheels"])
    assert all(5 <= len(name[:-4].split("-")) <= 6 for name in wheels)
    assert f"talkbridge-{__version__}-py3-none-any.whl" in wheels
    pyzmq = [w for w in wheels if w.startswith("pyzmq-")]
    assert len({w.split("-")[1] for w in pyzmq}) == 1  # one pinned release
    for platform in MANIFEST["platforms"]:
        covering = [w for w in pyzmq if platform in build_command.wheel_platforms(w)]
        assert len(covering) == 1, (platform, covering)
        assert "-cp311-" in covering[0]  # Blender 4.2 .. 4.5 embed Python 3.11


@pytest.mark.parametrize(
    "name, expected",
    [
        ("pyzmq-27.3.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl", {"linux-x64"}),
        ("pyzmq-27.3.0-cp311-cp311-win_amd64.whl", {"windows-x64"}),
        ("pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl", {"macos-x64", "macos-arm64"}),
        ("pyzmq-27.3.0-cp311-cp311-macosx_11_0_arm64.whl", {"macos-arm64"}),
        ("talkbridge-0.1.0-py3-none-any.whl", set(build_command.PLATFORMS)),
    ],
)
def test_wheel_platform_mapping(name, expected):
    assert build_command.wheel_platforms(name) == expected


def test_manifest_is_narrowed_per_platform():
    text = (ROOT / "blender_manifest.toml").read_text()
    narrowed = tomllib.loads(build_command.manifest_for_platform(text, "windows-x64", ["a-1-py3-none-any.whl"]))
    assert narrowed["platforms"] == ["windows-x64"] and narrowed["wheels"] == ["./wheels/a-1-py3-none-any.whl"]
    assert {k: v for k, v in narrowed.items() if k not in ("platforms", "wheels")} == {
        k: v for k, v in MANIFEST.items() if k not in ("platforms", "wheels")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    code = main(["addon", "build", "-o", str(out), "--platform", "local", "--offline", "--wheel-cache", str(out / "none")])
    assert code == 0
    zips = sorted(out.glob("*.zip"))
    assert len(zips) == 1
    return zips[0]


def test_build_writes_an_installable_zip_with_every_listed_wheel(built):
    platform = build_command.local_platform()
    assert built.name == f"talkbridge-{__version__}-{platform.replace('-', '_')}.zip"
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        assert manifest["platforms"] == [platform]
        assert len(manifest["wheels"]) == 2
        for wheel in manifest["wheels"]:
            assert wheel.removeprefix("./") in names, wheel
            assert platform in build_command.wheel_platforms(Path(wheel).name)
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
    import importlib.util

    spec = importlib.util.find_spec("bpy")  # the test extra installs bpy (Blender as a module)
    assert spec is not None and spec.origin, "bpy is not installed: ./scripts/dev setup installs the test extra"
    validator = Path(spec.origin).parent / "4.5" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert validator.is_file(), validator
    result = subprocess.run([sys.executable, str(validator), "validate", str(built)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Success" in result.stdout, result.stdout + result.stderr


def test_build_refuses_to_replace_a_zip_and_explains_missing_wheels(built, tmp_path, caplog):
    before = built.read_bytes()
    code = main(["addon", "build", "-o", str(built.parent), "--platform", "local", "--offline", "--wheel-cache", str(tmp_path)])
    assert code == 1 and "already exists" in caplog.text and built.read_bytes() == before
    caplog.clear()
    other = next(p for p in build_command.PLATFORMS if p != build_command.local_platform())
    code = main(["addon", "build", "-o", str(tmp_path), "--platform", other, "--offline", "--wheel-cache", str(tmp_path / "empty")])
    assert code == 1 and "no pyzmq" in caplog.text and other in caplog.text and "without --offline" in caplog.text
    assert not list(tmp_path.glob("*.zip"))

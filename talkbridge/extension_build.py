"""The installable Blender extension zips (``talkbridge addon build``), two per platform.

Blender 4.4 .. 5.0 embed Python 3.11 and Blender 5.1 and later Python 3.13. pyzmq is a compiled
wheel, and Blender derives the Pythons an extension accepts from its wheels' file names, so one zip
cannot serve both: each platform gets one zip per :data:`TARGETS` entry, with that Python's pyzmq
wheel and a manifest whose ``blender_version_min``/``blender_version_max`` let only the matching
Blenders take it (a repository lists both; each Blender installs the one for its version).

Each zip holds the add-on (`addon/` at the zip's root), a `blender_manifest.toml` narrowed to one
platform and one Blender range, and the wheels Blender installs on enable (no pip at run time): the
talkbridge wheel built from this checkout (pure Python; the add-on uses only its client, naming and
pose modules) and that platform's pyzmq wheel for that Python.

pyzmq wheels come from a cache folder. A missing one is downloaded with
`pip download --only-binary=:all: --platform ... --python-version ...` unless `--offline` is given;
offline, the local platform's wheel for the running Python can instead be repacked from the pyzmq
installed in it (same version, same files), which is what the tests do so they never need the network.

The output folder also gets ``index.json``, the repository listing Blender's
``extension server-generate`` writes, so the folder can be hosted as a remote extension repository.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import os
import platform as host_platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.source_layout import package_folders

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64", "macos-x64")


@dataclass(frozen=True)
class BlenderTarget:
    """One embedded Python and the Blender releases that ship it (``blender_max`` is the first one that does not)."""

    python: str
    blender_min: str
    blender_max: str | None
    label: str

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")


TARGETS = {
    "3.11": BlenderTarget("3.11", "4.4.0", "5.1.0", "blender4.4-5.0"),  # slotted actions arrived in 4.4
    "3.13": BlenderTarget("3.13", "5.1.0", None, "blender5.1-and-later"),
}
PIP_PLATFORMS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_10_15_x86_64",
}
ADDON_EXCLUDE = re.compile(r"(__pycache__|\.pyc$|\.pyo$|~$|\.orig$)")


def source_parts() -> tuple[str, ...]:
    """What the talkbridge wheel is built from: the packaging files and every folder pyproject.toml's
    package-dir maps (read when building, so an installed copy without a checkout still imports)."""
    return ("setup.py", "pyproject.toml", "README.md", *sorted({folder.name for folder in package_folders(ROOT).values()}))

DEFAULT_CACHE = Path(os.environ.get("TALKBRIDGE_WHEEL_CACHE", Path.home() / ".cache" / "talkbridge" / "wheels"))


class BuildError(TalkbridgeError):
    """The extension could not be built; the message says what is missing."""


# ---------------------------------------------------------------------------------- manifest


def read_manifest(path: Path = ROOT / "blender_manifest.toml") -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read the extension manifest ({error.strerror})", path) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"the extension manifest is not valid TOML ({error})", path) from None


def wheel_platforms(filename: str) -> set[str]:
    """Blender platforms a wheel installs on, from its file name (``any`` -> every platform)."""
    stem = filename[:-4] if filename.endswith(".whl") else filename
    parts = stem.split("-")
    if len(parts) not in (5, 6):
        raise BuildError(f"{filename}: not a wheel file name (name-version[-build]-python-abi-platform.whl)")
    found: set[str] = set()
    for tag in parts[-1].split("."):
        if tag == "any":
            return set(PLATFORMS)
        system, _, rest = tag.partition("_")
        if system.startswith("manylinux") or system.startswith("musllinux") or system == "linux":
            system = "linux"
        elif system.startswith("win"):
            system = "windows"
        elif system == "macosx":
            system = "macos"
        machine = rest.rpartition("_")[2] if "_" in rest else rest
        if tag.endswith("x86_64") or tag.endswith("amd64"):
            machine = "x64"
        elif tag.endswith("arm64") or tag.endswith("aarch64"):
            machine = "arm64"
        machines = ["x64", "arm64"] if machine == "universal2" else [machine]
        found.update(f"{system}-{m}" for m in machines)
    return found


def local_platform() -> str:
    system = {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux" if sys.platform.startswith("linux") else sys.platform)
    machine = host_platform.machine().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def manifest_for_platform(text: str, platform_name: str, wheels: list[str], target: BlenderTarget | None = None) -> str:
    """The repository manifest with ``platforms`` and ``wheels`` narrowed to one platform.

    With a ``target``, ``blender_version_min``/``blender_version_max`` become that target's range.
    """
    wheel_lines = "".join(f'  "./wheels/{name}",\n' for name in wheels)
    text, n_platforms = re.subn(r"(?m)^platforms\s*=\s*\[[^\]]*\]", f'platforms = ["{platform_name}"]', text)
    text, n_wheels = re.subn(r"(?ms)^wheels\s*=\s*\[.*?\]", "wheels = [\n" + wheel_lines + "]", text)
    if n_platforms != 1 or n_wheels != 1:
        raise BuildError("blender_manifest.toml must have one `platforms = [...]` and one `wheels = [...]` list")
    if target is not None:
        versions = f'blender_version_min = "{target.blender_min}"'
        if target.blender_max:
            versions += f'\nblender_version_max = "{target.blender_max}"'
        text = re.sub(r"(?m)^blender_version_max\s*=.*\n", "", text)
        text, n_min = re.subn(r"(?m)^blender_version_min\s*=.*$", versions, text)
        if n_min != 1:
            raise BuildError("blender_manifest.toml must have one `blender_version_min = ...` line")
    return text


def wheel_fits_python(filename: str, python: str) -> bool:
    """Whether a wheel (by its python and abi tags) imports on CPython ``python`` ("3.13")."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) not in (5, 6):
        return False
    major, minor = (int(x) for x in python.split("."))
    for python_tag in parts[-3].split("."):
        for abi_tag in parts[-2].split("."):
            if python_tag == f"cp{major}{minor}" and abi_tag in (f"cp{major}{minor}", "none"):
                return True
            if abi_tag == f"abi{major}" and python_tag.startswith(f"cp{major}") and int(python_tag[3:] or 0) <= minor:
                return True
            if abi_tag == "none" and python_tag in (f"py{major}", f"py{major}{minor}"):
                return True
    return False


# ---------------------------------------------------------------------------------- wheels


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(distribution: str, folder: Path) -> Path:
    """Rebuild the wheel of an installed distribution from its RECORD (offline builds and tests)."""
    dist = metadata.distribution(distribution)
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise BuildError(f"the installed {distribution} has no wheel tags (installed from source?); run the build online")
    python_tag, abi_tag = tags[0].split("-")[:2]
    platform_tag = ".".join(sorted({t.split("-")[2] for t in tags}))
    name = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-{python_tag}-{abi_tag}-{platform_tag}.whl"
    info_dir = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info"
    target = folder / name
    rows = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            if file.name == "RECORD" or "__pycache__" in file.parts or ".." in file.parts or file.name in ("INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            data = Path(file.locate()).read_bytes()
            archive.writestr(str(file), data)
            rows.append((str(file), _record_hash(data), str(len(data))))
        record = io.StringIO()
        writer = csv.writer(record, lineterminator="\n")
        writer.writerows(rows + [(f"{info_dir}/RECORD", "", "")])
        archive.writestr(f"{info_dir}/RECORD", record.getvalue())
    return target


def pyzmq_version() -> str:
    """The pyzmq release the extension bundles: the one pinned in the manifest's wheel names."""
    for wheel in read_manifest().get("wheels", []):
        match = re.match(r"pyzmq-([^-]+)-", Path(wheel).name)
        if match:
            return match.group(1)
    raise BuildError("blender_manifest.toml lists no pyzmq wheel")


def find_pyzmq_wheel(platform_name: str, cache: Path, offline: bool, scratch: Path, python: str = "3.11") -> Path:
    """This platform's pyzmq wheel for Blender's ``python``: cached, downloaded, or (offline, local platform and Python) repacked.

    A wheel built for exactly that Python wins over a stable-ABI (abi3) one, so the 3.11 zip keeps
    its cp311 wheel (Blender reads the accepted Pythons from the wheel names).
    """
    version = pyzmq_version()
    tag = TARGETS[python].python_tag
    candidates = [
        c for c in (sorted(cache.glob(f"pyzmq-{version}-*.whl")) if cache.is_dir() else [])
        if platform_name in wheel_platforms(c.name) and wheel_fits_python(c.name, python)
    ]
    if candidates:
        return sorted(candidates, key=lambda c: f"-{tag}-{tag}-" not in c.name)[0]
    if not offline:
        cache.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
            "--no-deps", "--python-version", python, "--implementation", "cp", "--abi", tag, "--abi", "abi3",
            "--platform", PIP_PLATFORMS[platform_name], "--dest", str(cache), f"pyzmq=={version}",
        ]
        log.info("downloading pyzmq %s for %s, Python %s", version, platform_name, python)
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode == 0:
            return find_pyzmq_wheel(platform_name, cache, True, scratch, python)
        log.warning("pip download failed: %s", result.stderr.strip()[-400:])
    if platform_name == local_platform() and f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        try:
            installed = metadata.version("pyzmq")
        except metadata.PackageNotFoundError:
            installed = None
        if installed == version:
            return repack_installed("pyzmq", scratch)
    raise BuildError(
        f"no pyzmq {version} wheel for {platform_name} and Python {python} in {cache}; run without --offline "
        f"(downloads from PyPI) or put pyzmq-{version}-{tag}-*.whl (or a cp3x-abi3 one) for that platform there"
    )


def build_talkbridge_wheel(scratch: Path) -> Path:
    """Build the pure-Python talkbridge wheel from a copy of this checkout (the tree stays clean)."""
    source = scratch / "source"
    source.mkdir()
    for part in source_parts():
        origin = ROOT / part
        if origin.is_dir():
            shutil.copytree(origin, source / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(origin, source / part)
    out = scratch / "talkbridge-wheel"
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--no-build-isolation", "--wheel-dir", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        # This Python's setuptools cannot build it (e.g. too old for bdist_wheel): let pip fetch the
        # build requirements from pyproject.toml into an isolated environment instead.
        log.info("building without isolation failed; retrying with pip's isolated build environment")
        command.remove("--no-build-isolation")
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheels = list(out.glob("talkbridge-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise BuildError(f"building the talkbridge wheel failed: {(result.stderr or result.stdout).strip()[-800:]}")
    if not wheels[0].name.endswith("-py3-none-any.whl"):
        raise BuildError(f"the talkbridge wheel should be pure Python, got {wheels[0].name}")
    return wheels[0]


# ---------------------------------------------------------------------------------- zips


@dataclass
class BuiltZip:
    platform: str
    path: Path
    wheels: list[str]
    python: str = "3.11"


def addon_files(folder: Path = ROOT / "addon") -> list[Path]:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not ADDON_EXCLUDE.search(str(p.relative_to(folder)))]
    if not (folder / "__init__.py").is_file():
        raise BuildError(f"{folder}: the add-on package needs an __init__.py")
    return files


def write_zip(path: Path, manifest_text: str, wheels: list[Path], overwrite: bool) -> None:
    from talkbridge.exporters.atomic import atomic_output

    source = ROOT / "addon"
    with atomic_output(path, overwrite=overwrite) as temp:
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("blender_manifest.toml", manifest_text)
            for file in addon_files(source):
                archive.write(file, file.relative_to(source).as_posix())
            for wheel in wheels:
                archive.write(wheel, f"wheels/{wheel.name}")
        os.chmod(temp, 0o644)  # mkstemp makes private files; a release zip is meant to be shared


def zip_name(manifest: dict, platform_name: str, target: BlenderTarget) -> str:
    """``talkbridge-0.1.0-blender4.4-5.0-linux_x64.zip``: the Blender range is in the name so artists pick the right one."""
    return f"{manifest['id']}-{manifest['version']}-{target.label}-{platform_name.replace('-', '_')}.zip"


def build(
    output: Path,
    platforms: list[str] | None = None,
    cache: Path = DEFAULT_CACHE,
    offline: bool = False,
    overwrite: bool = False,
    pythons: list[str] | None = None,
) -> list[BuiltZip]:
    """Build the extension zip for each platform and Blender Python, then the repository index; returns the zips."""
    platforms = [local_platform() if p == "local" else p for p in (platforms or list(PLATFORMS))]
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise BuildError(f"unsupported platform(s) {unknown}; choose from {list(PLATFORMS)}")
    pythons = list(dict.fromkeys(pythons or TARGETS))
    unknown = [p for p in pythons if p not in TARGETS]
    if unknown:
        raise BuildError(f"unsupported Blender Python(s) {unknown}; choose from {list(TARGETS)}")
    manifest_path = ROOT / "blender_manifest.toml"
    if not (ROOT / "addon").is_dir() or not manifest_path.is_file() or not (ROOT / "setup.py").is_file():
        raise BuildError(f"{ROOT}: not a talkbridge source checkout (addon/, blender_manifest.toml); run the build from one")
    manifest_text = manifest_path.read_text(encoding="utf-8")
    manifest = read_manifest(manifest_path)
    if not output.is_dir():
        output.mkdir(parents=True)
    targets = {(p, py): output / zip_name(manifest, p, TARGETS[py]) for p in platforms for py in pythons}
    for target in targets.values():
        if target.exists() and not overwrite:
            raise InputError("already exists; pass --overwrite to replace it", target)
    built: list[BuiltZip] = []
    with tempfile.TemporaryDirectory(prefix="talkbridge-addon-") as folder:
        scratch = Path(folder)
        # Find every pyzmq wheel first: a missing one fails fast and leaves no half-built set.
        chosen = {key: find_pyzmq_wheel(key[0], cache, offline, scratch, key[1]) for key in targets}
        talkbridge_wheel = build_talkbridge_wheel(scratch)
        expected = f"talkbridge-{manifest['version']}-py3-none-any.whl"
        if talkbridge_wheel.name != expected:
            raise BuildError(f"built {talkbridge_wheel.name} but the manifest version expects {expected}")
        for (platform_name, python), path in targets.items():
            wheels = [chosen[platform_name, python], talkbridge_wheel]
            text = manifest_for_platform(manifest_text, platform_name, [w.name for w in wheels], TARGETS[python])
            write_zip(path, text, wheels, overwrite)
            built.append(BuiltZip(platform_name, path, [w.name for w in wheels], python))
            log.info("wrote %s (%s)", path, ", ".join(w.name for w in wheels))
    write_index(output)
    return built


# ---------------------------------------------------------------------------------- repository index


def python_versions(wheels: list[str]) -> list[str]:
    """The Pythons a set of wheels needs, as Blender's repository listing writes them ("3.11", or "3" for abi3)."""
    found: set[tuple[int, ...]] = set()
    for wheel in wheels:
        parts = Path(wheel).name.removesuffix(".whl").split("-")
        abi_tags, python_tags = parts[-2].split("."), parts[-3].split(".")
        stable = {(int(t[3:]),) for t in abi_tags if re.fullmatch(r"abi\d+", t)}
        if stable:
            found |= stable
            continue
        for tag in python_tags:
            match = re.fullmatch(r"(?:cp|py)(\d)(\d*)", tag)
            if match:
                found.add((int(match.group(1)), int(match.group(2))) if match.group(2) else (int(match.group(1)),))
    found = {v for v in found if v[0] > 2}
    found -= {(v[0],) for v in found if len(v) == 2}
    return [".".join(map(str, v)) for v in sorted(found)]


# The manifest fields Blender's listing carries, in its order (``wheels`` is left out of listings).
INDEX_FIELDS = (
    "schema_version", "id", "name", "tagline", "version", "type", "maintainer", "license", "blender_version_min",
    "blender_version_max", "website", "copyright", "permissions", "tags", "platforms",
)


def index_entry(path: Path) -> dict:
    """One ``data`` row of ``index.json`` for an extension zip: its manifest plus where and what the archive is."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
    except (OSError, KeyError, zipfile.BadZipFile, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BuildError(f"{path}: not an extension zip with a readable blender_manifest.toml ({error})") from None
    entry = {key: manifest[key] for key in INDEX_FIELDS if manifest.get(key) is not None}
    if manifest.get("wheels"):
        entry["python_versions"] = python_versions(manifest["wheels"])
    data = path.read_bytes()
    entry["archive_url"] = "./" + urllib.request.pathname2url(path.name)
    entry["archive_size"] = len(data)
    entry["archive_hash"] = "sha256:" + hashlib.sha256(data).hexdigest()
    return entry


def write_index(folder: Path) -> Path:
    """Write ``index.json`` (listing format v1) for every extension zip in ``folder``; returns its path.

    Same content as ``blender --command extension server-generate --repo-dir folder`` writes, so the
    folder can be served as a remote repository (Blender picks the zip whose version range fits it).
    """
    from talkbridge.exporters.atomic import atomic_output

    zips = sorted(p for p in folder.glob("*.zip") if not p.name.startswith("."))
    listing = {"version": "v1", "blocklist": [], "data": [index_entry(p) for p in zips]}
    target = folder / "index.json"
    with atomic_output(target, overwrite=True) as temp:
        Path(temp).write_text(json.dumps(listing, indent=2), encoding="utf-8")
    log.info("wrote %s (%d packages)", target, len(zips))
    return target

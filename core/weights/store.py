"""The per-user weight store: where files live, what state they are in, fetching and adopting them.

Layout: ``<store>/checkpoints/`` (the official SadTalker folder, so engines read it unchanged),
``<store>/face_alignment/``, ``<store>/gfpgan/``. An existing SadTalker ``checkpoints/`` folder can be
adopted in place instead (nothing is copied or moved); the choice is remembered in
``<store>/store.json``, together with the sha256 of files already verified (keyed by size and mtime,
so an unchanged 700 MB file is not hashed again) and the hash a host published for a file the catalog
has none for (Hugging Face's, at download time), which ``verify`` then checks as it checks the catalog's.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from talkbridge.core.errors import InputError
from talkbridge.core.weights.catalog import CATALOG, CHECKPOINTS, FACE_ALIGNMENT, WeightFile
from talkbridge.core.weights.download import SHA256, PublishedDigest, digest_of, download_verified

log = logging.getLogger(__name__)


def _recorded_digest(recorded: str) -> tuple[str, str]:
    """(algorithm, digest) of a store.json ``verified`` entry: sha256 digests are kept bare, as older
    stores have them; others as ``algorithm:digest``."""
    algorithm, _, digest = recorded.rpartition(":")
    return algorithm or SHA256, digest


STORE_ENV = "TALKBRIDGE_MODELS"
STATE_FILE = "store.json"


def default_store_dir() -> Path:
    """``$TALKBRIDGE_MODELS``, else the platform's per-user data folder."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "talkbridge" / "models"


def torch_hub_checkpoints(torch_home: str | Path | None = None) -> Path:
    """Where face-alignment (through torch.hub) looks for its weights."""
    if torch_home is None:
        torch_home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"
    return Path(torch_home) / "hub" / "checkpoints"


class FileStatus(str, enum.Enum):
    OK = "ok"
    UNVERIFIED = "present (no published checksum)"
    MISSING = "missing"
    PARTIAL = "partial"
    CORRUPT = "corrupt"

    @property
    def usable(self) -> bool:
        return self in (FileStatus.OK, FileStatus.UNVERIFIED)


@dataclass(frozen=True)
class FileReport:
    entry: WeightFile
    path: Path
    status: FileStatus
    detail: str = ""


class WeightStore:
    def __init__(self, root: str | Path | None = None, catalog: Iterable[WeightFile] = CATALOG) -> None:
        self.root = Path(root) if root is not None else default_store_dir()
        self.catalog = tuple(catalog)
        self._state = self._read_state()

    # -- state ---------------------------------------------------------------------------------
    def _read_state(self) -> dict:
        path = self.root / STATE_FILE
        if not path.is_file():
            return {"adopted": {}, "verified": {}, "published": {}}
        try:
            state = json.loads(path.read_text())
        except ValueError:
            log.warning("ignoring unreadable %s", path)
            return {"adopted": {}, "verified": {}, "published": {}}
        state.setdefault("adopted", {})
        state.setdefault("verified", {})
        state.setdefault("published", {})
        return state

    def _write_state(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / (STATE_FILE + ".tmp")
        temp.write_text(json.dumps(self._state, indent=1, sort_keys=True))
        os.replace(temp, self.root / STATE_FILE)

    # -- locations -----------------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        adopted = self._state["adopted"].get(name)
        return Path(adopted) if adopted else self.root / name

    @property
    def checkpoint_dir(self) -> Path:
        """The folder engines read SadTalker checkpoints from."""
        return self.folder(CHECKPOINTS)

    def path(self, entry: WeightFile) -> Path:
        return self.folder(entry.folder) / entry.name

    def entry(self, name: str) -> WeightFile:
        for entry in self.catalog:
            if entry.name == name:
                return entry
        raise InputError(f"{name!r} is not a known weight file (see `talkbridge models list`)")

    def adopt(self, folder: str | Path) -> list[FileReport]:
        """Use an existing SadTalker ``checkpoints/`` folder, or an Audio2Face-3D model folder, in place;
        returns the files found there."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise InputError("is not a folder", folder)
        if (folder / "model.json").is_file():
            return self._adopt_audio2face(folder)
        known = [e for e in self.catalog if e.folder == CHECKPOINTS and (folder / e.name).exists()]
        if not known:
            names = ", ".join(e.name for e in self.catalog if e.folder == CHECKPOINTS and e.default)
            raise InputError(f"holds none of the SadTalker checkpoint files ({names})", folder)
        self._state["adopted"][CHECKPOINTS] = str(folder)
        self._write_state()
        return [self.status(e, deep=False) for e in known]

    def _adopt_audio2face(self, folder: Path) -> list[FileReport]:
        """Adopt a downloaded Audio2Face-3D folder as the store group its ``network_info.json`` names."""
        try:
            info = json.loads((folder / "network_info.json").read_text(encoding="utf-8"))
            kind, actor = info["id"]["type"], str(info["id"].get("actor", "")).lower()
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError("has a model.json but no readable network_info.json with an 'id': not an Audio2Face-3D folder", folder) from None
        group = "audio2face-v3" if kind == "diffusion" else f"audio2face-{actor}"
        entries = [e for e in self.catalog if e.group == group]
        if not entries:
            raise InputError(f"is an Audio2Face-3D model for {actor or kind!r}, which the catalog does not list", folder)
        self._state["adopted"][group] = str(folder)
        self._write_state()
        return [self.status(e, deep=False) for e in entries]

    # -- checking ------------------------------------------------------------------------------
    def status(self, entry: WeightFile, deep: bool = True, progress: Callable[[int], None] | None = None) -> FileReport:
        """Where ``entry`` stands. ``deep`` hashes the file when a checksum is published."""
        path = self.path(entry)
        part = path.with_name(path.name + ".part")
        if not path.exists():
            if part.exists():
                got = part.stat().st_size
                of = f" of {entry.size}" if entry.size else ""
                return FileReport(entry, path, FileStatus.PARTIAL, f"{got}{of} bytes downloaded; `download` resumes it")
            return FileReport(entry, path, FileStatus.MISSING)
        size = path.stat().st_size
        if entry.size is not None and size != entry.size:
            kind = FileStatus.PARTIAL if size < entry.size else FileStatus.CORRUPT
            return FileReport(entry, path, kind, f"{size} bytes, expected {entry.size}")
        if size == 0:
            return FileReport(entry, path, FileStatus.CORRUPT, "empty file")
        if entry.sha256 is None:
            published = PublishedDigest.from_json(self._state["published"].get(str(path)))
            if published is None:
                return FileReport(entry, path, FileStatus.UNVERIFIED, f"{size} bytes")
            return self._check_published(entry, path, published, deep, progress)
        if not deep:
            return FileReport(entry, path, FileStatus.UNVERIFIED, "not hashed yet; run `talkbridge models verify`")
        digest = self._digest(path, SHA256, progress)
        if digest != entry.sha256:
            return FileReport(entry, path, FileStatus.CORRUPT, f"sha256 {digest[:12]}... differs from the published {entry.sha256[:12]}...")
        return FileReport(entry, path, FileStatus.OK, "sha256 verified")

    def _check_published(self, entry: WeightFile, path: Path, published: PublishedDigest, deep: bool,
                         progress: Callable[[int], None] | None) -> FileReport:
        """Check ``path`` against the hash its host published when it was downloaded."""
        size = path.stat().st_size
        if published.size is not None and size != published.size:
            kind = FileStatus.PARTIAL if size < published.size else FileStatus.CORRUPT
            return FileReport(entry, path, kind, f"{size} bytes, the host published {published.size}")
        if not deep:
            return FileReport(entry, path, FileStatus.UNVERIFIED, "not hashed yet; run `talkbridge models verify`")
        if self._digest(path, published.algorithm, progress) != published.value:
            return FileReport(entry, path, FileStatus.CORRUPT,
                              f"{published.algorithm} differs from the host's published {published.value[:12]}...")
        return FileReport(entry, path, FileStatus.OK, f"{published.algorithm} verified (published by the host)")

    def _digest(self, path: Path, algorithm: str, progress: Callable[[int], None] | None) -> str:
        """``path``'s ``algorithm`` digest, hashed only when its size or mtime changed since store.json
        recorded it, so an unchanged 700 MB file is not hashed at every ``verify``."""
        stat = path.stat()
        cached = self._state["verified"].get(str(path))
        if (isinstance(cached, list) and len(cached) == 3 and cached[:2] == [stat.st_size, stat.st_mtime_ns]
                and isinstance(cached[2], str) and _recorded_digest(cached[2])[0] == algorithm):
            return _recorded_digest(cached[2])[1]
        digest = digest_of(path, algorithm, progress)
        self._remember_digest(path, algorithm, digest)
        return digest

    def _remember_digest(self, path: Path, algorithm: str, digest: str) -> None:
        """Record ``digest`` for the file as it is now (its size and mtime) in store.json."""
        stat = path.stat()
        recorded = digest if algorithm == SHA256 else f"{algorithm}:{digest}"
        self._state["verified"][str(path)] = [stat.st_size, stat.st_mtime_ns, recorded]
        self._write_state()

    # -- fetching ------------------------------------------------------------------------------
    def download(self, entry: WeightFile, progress: Callable[[int, int | None], None] | None = None) -> FileReport:
        """Fetch ``entry`` unless it is already usable; resumes partial downloads."""
        report = self.status(entry)
        if report.status.usable:
            return report
        if report.status is FileStatus.CORRUPT:
            log.warning("%s is corrupt (%s); downloading it again", report.path, report.detail)
            report.path.unlink()
        published = download_verified(entry.urls, report.path, entry.size, entry.sha256, progress)
        if published is not None:  # remembered for `verify`; just checked, so not hashed again now
            self._state["published"][str(report.path)] = published.to_json()
            self._remember_digest(report.path, published.algorithm, published.value)
        elif self._state["published"].pop(str(report.path), None) is not None:
            self._write_state()
        return self.status(entry)

    def seed_face_alignment(self, torch_home: str | Path | None = None) -> list[Path]:
        """Place the face-alignment weights where the package looks, so it never downloads them."""
        target = torch_hub_checkpoints(torch_home)
        seeded = []
        for entry in self.catalog:
            if entry.folder != FACE_ALIGNMENT or not self.path(entry).exists():
                continue
            target.mkdir(parents=True, exist_ok=True)
            destination = target / entry.name
            if not destination.exists():
                temp = destination.with_name(destination.name + ".tmp")
                try:
                    os.link(self.path(entry), temp)
                except OSError:
                    shutil.copyfile(self.path(entry), temp)
                os.replace(temp, destination)
            seeded.append(destination)
        return seeded

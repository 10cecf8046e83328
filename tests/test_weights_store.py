"""The model manager against a loopback HTTP server serving checkpoint files made by the tests."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.weights import FileStatus, WeightFile, WeightStore
from talkbridge.core.weights.download import DownloadError
from tests.http_fixture import FileServer
from tests.sadtalker_weights import write_combined_safetensors, write_pth_checkpoints

SCRIPT = Path(sys.executable).with_name("talkbridge")


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("weights")
    combined = write_combined_safetensors(folder)
    exp, pose = write_pth_checkpoints(folder)
    fan = folder / "s3fd-619a316812.pth"
    fan.write_bytes(b"detector weights" * 1000)
    return {p.name: p.read_bytes() for p in (combined, exp, pose, fan)}


def catalog_for(server: FileServer, files: dict[str, bytes], *, checksums: bool = True) -> list[WeightFile]:
    entries = []
    for name, body in files.items():
        folder = "face_alignment" if name.startswith("s3fd") else "checkpoints"
        group = "face-alignment" if folder == "face_alignment" else "sadtalker"
        entries.append(WeightFile(
            name, group, folder, (f"{server.url}/missing/{name}", f"{server.url}/{name}"),
            len(body) if checksums else None, hashlib.sha256(body).hexdigest() if checksums else None,
            default=name.endswith((".safetensors", ".pth")) and not name.startswith("auido"),
        ))
    return entries


def test_download_verify_and_use(tmp_path, weight_files):
    with FileServer({f"/{k}": v for k, v in weight_files.items()}) as server:
        store = WeightStore(tmp_path / "store", catalog_for(server, weight_files))
        for entry in store.catalog:
            assert store.status(entry).status is FileStatus.MISSING
            report = store.download(entry)
            assert report.status is FileStatus.OK, report
            assert report.path.read_bytes() == weight_files[entry.name]
        # the first source 404s; the mirror serves it
        assert any(path.startswith("/missing/") for path, _ in server.requests)
    from talkbridge.core.sadtalker.audio_models import AudioCheckpoints, load_audio2coeff

    load_audio2coeff(AudioCheckpoints.find(store.checkpoint_dir))  # the engine reads the store as is


def test_interrupted_download_resumes_with_range(tmp_path, weight_files):
    name = "SadTalker_V0.0.2_256.safetensors"
    files = {name: weight_files[name]}
    with FileServer({f"/{name}": files[name]}) as server:
        store = WeightStore(tmp_path, catalog_for(server, files))
        entry = store.entry(name)
        server.cut_after = 100_000
        with pytest.raises(DownloadError, match="expected"):
            store.download(entry)
        report = store.status(entry)
        assert report.status is FileStatus.PARTIAL and "resumes" in report.detail
        assert not report.path.exists()  # never a half file under the final name
        server.cut_after = None
        assert store.download(entry).status is FileStatus.OK
        assert (f"/{name}", "bytes=100000-") in server.requests
        assert report.path.read_bytes() == files[name]


def test_server_ignoring_range_restarts_cleanly(tmp_path, weight_files):
    name = "auido2exp_00300-model.pth"
    files = {name: weight_files[name]}
    with FileServer({f"/{name}": files[name]}) as server:
        store = WeightStore(tmp_path, catalog_for(server, files))
        part = store.path(store.entry(name)).with_name(name + ".part")
        part.parent.mkdir(parents=True)
        part.write_bytes(files[name][:5000])
        server.honour_range = False
        assert store.download(store.entry(name)).status is FileStatus.OK
        assert store.path(store.entry(name)).read_bytes() == files[name]


def test_corrupt_and_truncated_files_are_reported(tmp_path, weight_files):
    with FileServer({}) as server:
        store = WeightStore(tmp_path, catalog_for(server, weight_files))
    entry = store.entry("auido2pose_00140-model.pth")
    path = store.path(entry)
    path.parent.mkdir(parents=True)
    body = bytearray(weight_files[entry.name])
    path.write_bytes(bytes(body[:-10]))
    assert store.status(entry).status is FileStatus.PARTIAL
    body[100] ^= 0xFF
    path.write_bytes(bytes(body))
    report = store.status(entry)
    assert report.status is FileStatus.CORRUPT and "sha256" in report.detail


def test_no_network_is_said_plainly(tmp_path, weight_files):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    entry = WeightFile("x.pth", "sadtalker", "checkpoints", (f"{dead}/x.pth",), 10, None)
    with pytest.raises(DownloadError, match="no network connection"):
        WeightStore(tmp_path, [entry]).download(entry)


def test_adopt_an_existing_checkpoints_folder(tmp_path, weight_files):
    existing = tmp_path / "SadTalker" / "checkpoints"
    existing.mkdir(parents=True)
    write_pth_checkpoints(existing)
    with FileServer({}) as server:
        catalog = catalog_for(server, weight_files)
    store = WeightStore(tmp_path / "store", catalog)
    found = store.adopt(existing)
    assert {r.entry.name for r in found} == {"auido2exp_00300-model.pth", "auido2pose_00140-model.pth"}
    assert WeightStore(tmp_path / "store", catalog).checkpoint_dir == existing.resolve()  # remembered
    with pytest.raises(InputError, match="holds none"):
        store.adopt(tmp_path)


def test_face_alignment_cache_is_seeded(tmp_path, weight_files):
    name = "s3fd-619a316812.pth"
    with FileServer({f"/{name}": weight_files[name]}) as server:
        store = WeightStore(tmp_path / "store", catalog_for(server, {name: weight_files[name]}))
        store.download(store.entry(name))
    seeded = store.seed_face_alignment(tmp_path / "torch")
    assert seeded == [tmp_path / "torch" / "hub" / "checkpoints" / name]
    assert seeded[0].read_bytes() == weight_files[name]


def test_cli_download_verify_path(tmp_path, weight_files):
    with FileServer({f"/{k}": v for k, v in weight_files.items()}) as server:
        catalog = tmp_path / "catalog.json"
        catalog.write_text(json.dumps([e.to_json() for e in catalog_for(server, weight_files)]))
        base = ["--dir", str(tmp_path / "store"), "--catalog", str(catalog)]
        run = lambda *a: subprocess.run([str(SCRIPT), "models", *a], capture_output=True, text=True, timeout=120)  # noqa: E731
        missing = run("verify", *base)
        assert missing.returncode == 1 and "missing" in missing.stdout
        done = run("download", *base, "all", "--torch-home", str(tmp_path / "torch"))
        assert done.returncode == 0, done.stderr
        ok = run("verify", *base, "all")
        assert ok.returncode == 0 and ok.stdout.count("ok") == len(weight_files)
        assert run("path", *base).stdout.strip() == str(tmp_path / "store" / "checkpoints")
        assert (tmp_path / "torch" / "hub" / "checkpoints" / "s3fd-619a316812.pth").exists()
        listing = run("list", *base)
        assert listing.returncode == 0 and "SadTalker_V0.0.2_256.safetensors" in listing.stdout

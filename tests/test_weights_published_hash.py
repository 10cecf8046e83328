"""Downloads with no catalog checksum are checked against the hash Hugging Face publishes.

NVIDIA's Audio2Face-3D repositories publish no sizes or hashes outside Hugging Face, so the store
asks the ``/resolve/`` URL: an LFS file's sha256 rides on the redirect to the CDN (``X-Linked-Etag``,
``X-Linked-Size``), a small file kept in git has its git blob id as ``ETag``. The loopback server
plays both roles; the git blob id is computed by git itself, not by the code under test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from talkbridge.core.weights import FileStatus, WeightFile, WeightStore
from talkbridge.core.weights.download import DownloadError, published_digest
from tests.http_fixture import FileServer

ONNX = bytes(range(256)) * 2000  # an "LFS" file: 512,000 bytes
MODEL_JSON = json.dumps({"networkPath": "network.trt"}).encode()  # a file kept in git
REPO = "/nvidia/Audio2Face-3D-v2.3-Mark/resolve/main"


def git_blob_id(body: bytes, tmp: Path) -> str:
    path = tmp / "blob"
    path.write_bytes(body)
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def hugging_face_like(tmp: Path, *, cdn_body: bytes = ONNX) -> FileServer:
    """``network.onnx`` behind a redirect with its published sha256; ``model.json`` served with its blob id."""
    server = FileServer({"/cdn/network.onnx": cdn_body, f"{REPO}/model.json": MODEL_JSON})
    server.redirects[f"{REPO}/network.onnx"] = ("/cdn/network.onnx", {
        "X-Linked-Etag": f'"{hashlib.sha256(ONNX).hexdigest()}"', "X-Linked-Size": str(len(ONNX)),
        "ETag": '"not-the-hash"',
    })
    server.headers[f"{REPO}/model.json"] = {"ETag": f'"{git_blob_id(MODEL_JSON, tmp)}"'}
    return server


def entries(server: FileServer) -> list[WeightFile]:
    return [WeightFile(name, "audio2face-mark", "audio2face-mark", (f"{server.url}{REPO}/{name}",))
            for name in ("network.onnx", "model.json")]


def test_an_lfs_file_is_checked_against_the_published_sha256_and_verify_keeps_checking_it(tmp_path):
    with hugging_face_like(tmp_path) as server:
        store = WeightStore(tmp_path / "store", entries(server))
        onnx = store.entry("network.onnx")
        report = store.download(onnx)
        assert report.status is FileStatus.OK and "sha256 verified" in report.detail, report
        assert report.path.read_bytes() == ONNX
        assert f"{REPO}/network.onnx" in server.heads  # asked for the hash, on the resolve URL
    # a later verify (a new store object, no network) still checks the file against that hash
    again = WeightStore(tmp_path / "store", store.catalog)
    assert again.status(onnx).status is FileStatus.OK
    damaged = bytearray(ONNX)
    damaged[1000] ^= 0xFF
    report.path.write_bytes(bytes(damaged))  # same size, other bytes
    bad = WeightStore(tmp_path / "store", store.catalog).status(onnx)
    assert bad.status is FileStatus.CORRUPT and "published" in bad.detail, bad
    report.path.write_bytes(ONNX[:-10])
    assert WeightStore(tmp_path / "store", store.catalog).status(onnx).status is FileStatus.PARTIAL


def test_a_git_file_is_checked_against_its_blob_id(tmp_path):
    with hugging_face_like(tmp_path) as server:
        store = WeightStore(tmp_path / "store", entries(server))
        report = store.download(store.entry("model.json"))
        assert report.status is FileStatus.OK and "git-blob-sha1 verified" in report.detail, report
        report.path.write_bytes(MODEL_JSON.replace(b"trt", b"xyz"))
        assert WeightStore(tmp_path / "store", store.catalog).status(store.entry("model.json")).status is FileStatus.CORRUPT


def test_bytes_that_differ_from_the_published_hash_never_take_the_final_name(tmp_path):
    tampered = bytearray(ONNX)
    tampered[-1] ^= 0x01
    with hugging_face_like(tmp_path, cdn_body=bytes(tampered)) as server:
        store = WeightStore(tmp_path / "store", entries(server))
        onnx = store.entry("network.onnx")
        with pytest.raises(DownloadError, match="differs from the one the host publishes"):
            store.download(onnx)
        assert not store.path(onnx).exists()
        assert not store.path(onnx).with_name("network.onnx.part").exists()


def test_a_cut_download_resumes_to_the_published_size(tmp_path):
    with hugging_face_like(tmp_path) as server:
        store = WeightStore(tmp_path / "store", entries(server))
        onnx = store.entry("network.onnx")
        server.cut_after = 200_000
        with pytest.raises(DownloadError, match=f"expected {len(ONNX)}"):
            store.download(onnx)
        assert store.status(onnx).status is FileStatus.PARTIAL
        server.cut_after = None
        assert store.download(onnx).status is FileStatus.OK
        assert ("/cdn/network.onnx", "bytes=200000-") in server.requests


def test_urls_without_a_published_hash_stay_unverified(tmp_path):
    with FileServer({"/plain/file.bin": b"x" * 100, f"{REPO}/nohash.bin": b"y" * 100}) as server:
        assert published_digest(f"{server.url}/plain/file.bin") is None  # not a /resolve/ URL: not even asked
        assert published_digest(f"{server.url}{REPO}/nohash.bin") is None  # asked, nothing published
        assert server.heads == [f"{REPO}/nohash.bin"]
        entry = WeightFile("nohash.bin", "audio2face-mark", "audio2face-mark", (f"{server.url}{REPO}/nohash.bin",))
        store = WeightStore(tmp_path / "store", [entry])
        assert store.download(entry).status is FileStatus.UNVERIFIED


def test_an_unchanged_file_is_hashed_once_whichever_hash_it_is_checked_against(tmp_path, monkeypatch):
    """store.json remembers each file's digest by size and mtime: a verify hashes only files that
    changed, for the catalog's sha256 and for a host's published hash alike."""
    import os

    import talkbridge.core.weights.store as store_module

    hashed = []
    real_digest_of = store_module.digest_of
    monkeypatch.setattr(store_module, "digest_of", lambda path, algorithm, progress=None: (
        hashed.append((Path(path).name, algorithm)), real_digest_of(path, algorithm, progress))[1])
    with hugging_face_like(tmp_path) as server:
        store = WeightStore(tmp_path / "store", entries(server))
        store.download(store.entry("model.json"))  # checked during the download: not hashed by the store
    catalogued = WeightFile("old.bin", "sadtalker", "checkpoints", ("http://127.0.0.1:9/old.bin",), 100,
                            hashlib.sha256(b"z" * 100).hexdigest())
    (tmp_path / "store" / "checkpoints").mkdir(parents=True)
    (tmp_path / "store" / "checkpoints" / "old.bin").write_bytes(b"z" * 100)
    catalog = (*store.catalog, catalogued)
    for _ in range(2):
        fresh = WeightStore(tmp_path / "store", catalog)
        assert fresh.status(fresh.entry("model.json")).status is FileStatus.OK
        assert fresh.status(catalogued).status is FileStatus.OK
    assert hashed == [("old.bin", "sha256")]
    json_path = store.path(store.entry("model.json"))
    os.utime(json_path, ns=(json_path.stat().st_atime_ns, json_path.stat().st_mtime_ns + 1_000_000))  # touched
    assert WeightStore(tmp_path / "store", catalog).status(store.entry("model.json")).status is FileStatus.OK
    assert hashed == [("old.bin", "sha256"), ("model.json", "git-blob-sha1")]

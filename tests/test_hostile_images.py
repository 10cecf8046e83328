"""Image bombs: portraits are checked from their header before a pixel is decoded, and the lite
engine, which does not draw the portrait, never decodes it."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

from talkbridge.core.errors import InputError
from talkbridge.core.face.image_io import MAX_IMAGE_PIXELS, image_size, read_image_rgb


def png_declaring(path, width: int, height: int):
    """A small PNG whose header declares ``width`` x ``height`` (its pixel data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imread", lambda *a, **k: pytest.fail("the image was decoded"))


@pytest.mark.parametrize("width,height", [(20000, 20000), (8000, 5001), (100_000, 100_000)])
def test_an_image_bomb_is_refused_from_its_header(tmp_path, no_decoding, width, height):
    path = png_declaring(tmp_path / "bomb.png", width, height)
    started = time.monotonic()
    with pytest.raises(InputError, match="the limit is 40 MP") as info:
        read_image_rgb(path)
    assert "bomb.png" in str(info.value) and time.monotonic() - started < 1


def test_sizes_up_to_the_limit_are_read_from_the_header(tmp_path, no_decoding):
    assert MAX_IMAGE_PIXELS == 40_000_000
    assert image_size(png_declaring(tmp_path / "big.png", 8000, 5000)) == (8000, 5000)
    with pytest.raises(InputError, match="cannot read the portrait as an image"):
        image_size(tmp_path.joinpath("junk.png").write_bytes(b"not an image") and tmp_path / "junk.png")


def test_the_lite_engine_never_decodes_the_portrait(tmp_path, no_decoding):
    from talkbridge.api import run_job
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.exporters.job_files import OutputPlan
    from tests.speech import speech_like, write_wav

    audio = write_wav(tmp_path / "speech.wav", speech_like(0.4))
    portrait = png_declaring(tmp_path / "portrait.png", 3000, 2000)  # header only: decoding it would fail too
    result = run_job(JobRequest(audio, portrait, JobOptions(engine="lite", size=64)), OutputPlan(tmp_path / "out", "clip", video=False))
    assert result.metadata["image_size"] == [3000, 2000]
    bomb = png_declaring(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(InputError, match="40 MP"):
        run_job(JobRequest(audio, bomb, JobOptions(engine="lite", size=64)), OutputPlan(tmp_path / "out", "bomb", video=False))
    assert not list((tmp_path / "out").glob("bomb*"))


def test_a_real_portrait_still_reads(tmp_path):
    import cv2

    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "p.png"), image)
    rgb = read_image_rgb(tmp_path / "p.png")
    assert rgb.shape == (40, 60, 3) and rgb[0, 0, 0] == 200

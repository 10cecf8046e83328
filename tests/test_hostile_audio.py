"""Hostile audio: loud float files that hang ffmpeg, absurd rates and lengths, non-finite samples.

Every one is refused as bad input before anything is resampled, encoded or uploaded, on the CLI,
batch rows and the sidecar; and ffmpeg itself runs under a watchdog, so nothing can hang.
"""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from talkbridge.core.audio import loading
from talkbridge.core.audio.loading import load_audio
from talkbridge.core.errors import InputError
from tests.speech import speech_like, write_wav


def loud_noise(seconds: float, peak: float) -> np.ndarray:
    """Noise scaled to ``peak``: what makes ffmpeg's AAC encoder spin (a sine does not)."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(int(seconds * 16000)).astype(np.float32)
    return noise / np.abs(noise).max() * np.float32(peak)


def wav_header_only(path, rate: int, claimed_bytes: int, payload: int = 16000):
    """A 16-bit PCM WAV at ``rate`` whose data chunk claims ``claimed_bytes`` but holds ``payload``."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", claimed_bytes)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body) + claimed_bytes) + body + b"\x01\x00" * (payload // 2))
    return path


@pytest.mark.parametrize("peak", [1e7, 1e30])
def test_a_float_wav_far_beyond_full_scale_is_refused_naming_the_file(tmp_path, peak):
    path = write_wav(tmp_path / "loud.wav", loud_noise(1.0, peak), subtype="FLOAT")
    with pytest.raises(InputError, match="peaks at") as info:
        load_audio(path)
    assert "loud.wav" in str(info.value)


def test_a_float_wav_a_little_over_full_scale_is_kept_with_a_warning(tmp_path, caplog):
    path = write_wav(tmp_path / "hot.wav", speech_like(0.5) * 2.5, subtype="FLOAT")
    samples = load_audio(path)
    assert np.abs(samples).max() > 1.5
    assert any("above full scale" in record.getMessage() for record in caplog.records)


def test_non_finite_samples_are_refused_before_resampling(tmp_path, monkeypatch):
    samples = speech_like(0.5)
    samples[100] = np.inf
    path = write_wav(tmp_path / "inf.wav", samples, rate=22050, subtype="FLOAT")
    import soxr

    monkeypatch.setattr(soxr, "resample", lambda *a, **k: pytest.fail("resampled before the samples were checked"))
    with pytest.raises(InputError, match="NaN or infinite"):
        load_audio(path)


@pytest.mark.parametrize("rate", [1, 8])
def test_an_absurd_sample_rate_is_refused_from_the_header_before_decoding(tmp_path, monkeypatch, rate):
    path = wav_header_only(tmp_path / "slow.wav", rate, claimed_bytes=16000)
    monkeypatch.setattr(loading, "_decode", lambda *a: pytest.fail("decoded before the header was checked"))
    with pytest.raises(InputError, match=f"sample rate {rate} Hz"):
        load_audio(path)


def test_the_decoded_length_is_bounded_from_the_header(tmp_path, monkeypatch):
    path = write_wav(tmp_path / "long.wav", speech_like(3.0))
    monkeypatch.setattr(loading, "_decode", lambda *a: pytest.fail("decoded before the header was checked"))
    with pytest.raises(InputError, match="3 s long; the limit is 2 s"):
        load_audio(path, max_seconds=2)


@pytest.mark.parametrize("samples,message", [
    (np.array([0.1, np.nan], np.float32), "NaN"),
    (np.full(1600, 1e30, np.float32), "peaks at"),
    (np.full(1600, 1e19, np.float32), "peaks at"),
    (np.zeros(16000 * 3, np.float32), "3 s long"),
    (np.array(["a"]), "numbers"),
])
def test_raw_samples_are_checked_like_a_file(samples, message):
    from talkbridge.core.audio.loading import check_pcm

    with pytest.raises(InputError, match=message):
        check_pcm(samples, max_seconds=2)


# ---------------------------------------------------------------------------------- every route


def test_generate_refuses_a_loud_float_wav_at_once(tmp_path):
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait

    audio = write_wav(tmp_path / "loud.wav", loud_noise(2.0, 1e7), subtype="FLOAT")
    portrait = write_portrait(tmp_path / "portrait.png")
    started = time.monotonic()
    code = main(["generate", str(portrait), str(audio), "-o", str(tmp_path / "out"), "--engine", "lite", "--size", "64"])
    assert code == 1 and time.monotonic() - started < 20
    assert not any((tmp_path / "out").glob("*.mp4"))


def test_a_batch_whose_first_row_is_loud_goes_on_to_the_next(tmp_path):
    from talkbridge.batch.backends import InProcessBackend
    from talkbridge.batch.manifest import read_manifest
    from talkbridge.batch.runner import run_batch

    write_wav(tmp_path / "loud.wav", loud_noise(1.0, 1e7), subtype="FLOAT")
    write_wav(tmp_path / "fine.wav", speech_like(0.4))
    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio,size\nloud.wav,64\nfine.wav,64\n")
    report = run_batch(read_manifest(manifest), tmp_path / "out", InProcessBackend(), progress=False)
    outcomes = {row.name: row for row in report.rows}
    assert outcomes["loud"].status == "failed" and "peaks at" in outcomes["loud"].reason
    assert outcomes["fine"].status == "done"


def _sidecar_error(runner, **submit):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client import Client
    from talkbridge.bridge.server import Server, ServerConfig

    with Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", devices=("cpu",))) as server:
        client = Client(server.address)
        try:
            client.connect(timeout=5)
            final = client.submit("lite", **submit).result().final
        finally:
            client.close()
    assert final.type == p.ERROR
    return final


@pytest.mark.parametrize("samples,message", [
    (np.full(16000, 1e30, np.float32), "peaks at"),
    (np.full(16000, 1e19, np.float32), "peaks at"),
    (np.concatenate([speech_like(0.5), [np.nan]]).astype(np.float32), "NaN"),
])
def test_the_sidecar_answers_bad_input_for_hostile_audio_pcm(samples, message):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.jobs import EngineRunner

    final = _sidecar_error(EngineRunner(), audio=samples)
    assert final.code == p.E_BAD_INPUT and final.body["retryable"] is False
    assert message in final.body["message"]


def test_the_sidecar_bounds_decoded_length_by_its_own_limit(tmp_path):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.jobs import EngineRunner

    path = write_wav(tmp_path / "three.wav", speech_like(3.0))
    final = _sidecar_error(EngineRunner(max_audio_seconds=2), audio=path)
    assert final.code == p.E_BAD_INPUT and final.body["retryable"] is False
    assert "the limit is 2 s" in final.body["message"] and "tmp" not in final.body["message"]
    slow = wav_header_only(tmp_path / "slow.wav", 1, claimed_bytes=1_000_000)
    final = _sidecar_error(EngineRunner(), audio=slow)
    assert final.code == p.E_BAD_INPUT and "sample rate 1 Hz" in final.body["message"]


def test_serve_takes_max_audio_seconds():
    from talkbridge.cli import build_parser

    args = build_parser().parse_args(["serve", "--max-audio-seconds", "12.5"])
    assert args.max_audio_seconds == 12.5

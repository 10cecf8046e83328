"""Audio containers libsndfile does not read (m4a/AAC here) decode through talkbridge's own ffmpeg
call, which is bounded in time (no progress for the stall limit stops it) and in size."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import numpy as np
import pytest

from talkbridge.core.audio import ffmpeg_decode
from talkbridge.core.audio.loading import load_audio
from talkbridge.core.errors import InputError
from talkbridge.core.media.ffmpeg import FFMPEG_ENV, ffmpeg_executable


@pytest.fixture
def m4a(tmp_path):
    path = tmp_path / "speech.m4a"
    subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=1.5:sample_rate=44100",
         "-ac", "2", "-c:a", "aac", str(path)],
        check=True, timeout=60,
    )
    return path


def test_an_m4a_decodes_through_ffmpeg_to_16_khz_mono(m4a):
    samples = load_audio(m4a)
    assert samples.dtype == np.float32 and abs(len(samples) - 24000) <= 1100  # 1.5 s (AAC may keep its priming)
    spectrum = np.abs(np.fft.rfft(samples[4000:20000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 300) <= 2  # the 300 Hz tone, resampled from 44.1 kHz


def _fake_ffmpeg(tmp_path, body: str):
    script = tmp_path / "ffmpeg"
    script.write_text("#!/usr/bin/env python3\nimport sys, time\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_an_ffmpeg_that_stops_making_progress_is_stopped_and_the_file_refused(tmp_path, monkeypatch, m4a):
    # A decoder that writes the start of a WAV stream, then hangs while ignoring SIGTERM.
    fake = _fake_ffmpeg(tmp_path, "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                        "sys.stdout.buffer.write(b'RIFF\\xff\\xff\\xff\\xffWAVE'); sys.stdout.flush()\ntime.sleep(600)\n")
    monkeypatch.setenv(FFMPEG_ENV, str(fake))
    monkeypatch.setattr(ffmpeg_decode, "KILL_GRACE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(InputError, match="made no progress decoding") as caught:
        ffmpeg_decode.decode_with_ffmpeg(m4a, max_seconds=10, stall_s=1.0)
    assert str(m4a) in str(caught.value)
    assert time.monotonic() - started < 10


def test_decoded_audio_past_the_size_bound_is_refused(monkeypatch, m4a):
    monkeypatch.setattr(ffmpeg_decode, "MAX_DECODED_BYTES", 10_000)
    with pytest.raises(InputError, match="too long to animate"):
        load_audio(m4a)


def test_a_file_ffmpeg_cannot_read_either_names_the_file(tmp_path):
    bogus = tmp_path / "notes.m4a"
    bogus.write_bytes(os.urandom(4000))
    with pytest.raises(InputError, match="cannot decode audio") as caught:
        load_audio(bogus)
    assert str(bogus) in str(caught.value)

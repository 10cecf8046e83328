"""ffmpeg runs under a watchdog: no progress while we wait on it, and it is stopped with a clear error."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from talkbridge.exporters.video import VideoError, VideoWriter
from tests.speech import speech_like, write_wav
from tests.test_hostile_audio import loud_noise


def _frames(n: int, size: int) -> np.ndarray:
    return np.full((n, size, size, 3), 128, np.uint8)


def test_ffmpeg_spinning_on_loud_audio_is_stopped_and_the_video_fails(tmp_path):
    audio = write_wav(tmp_path / "loud.wav", loud_noise(3.0, 1e7), subtype="FLOAT")  # the real hang, not a stand-in
    target = tmp_path / "clip.mp4"
    started = time.monotonic()
    with pytest.raises(VideoError, match="no progress for 1 s"):
        with VideoWriter(target, 25, (64, 64), audio, stall_timeout_s=1.0) as video:
            video.write(_frames(75, 64))
    assert time.monotonic() - started < 30
    assert not target.exists() and not list(tmp_path.glob(".clip.*"))


@pytest.fixture
def deaf_ffmpeg(tmp_path, monkeypatch):
    """An 'ffmpeg' that ignores SIGTERM and never reads its input (a hung encoder)."""
    script = tmp_path / "ffmpeg"
    script.write_text(f"#!{sys.executable}\nimport signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n")
    script.chmod(0o755)
    monkeypatch.setenv("TALKBRIDGE_FFMPEG", str(script))
    return script


def test_a_hung_ffmpeg_that_ignores_sigterm_is_killed(tmp_path, deaf_ffmpeg, monkeypatch):
    from talkbridge.core.media import watchdog as ffmpeg_watchdog

    monkeypatch.setattr(ffmpeg_watchdog, "KILL_GRACE_S", 0.5)
    monkeypatch.setenv("TALKBRIDGE_FFMPEG_STALL_S", "0.5")  # the environment sets the limit
    target = tmp_path / "clip.mp4"
    started = time.monotonic()
    with pytest.raises(VideoError, match="no progress for 0.5 s"):
        with VideoWriter(target, 25, (256, 256)) as video:
            video.write(_frames(4, 256))  # 786 kB: more than a pipe holds, so this write blocks
    assert time.monotonic() - started < 15
    assert not target.exists()


def test_a_slow_engine_is_not_a_stalled_ffmpeg(tmp_path):
    audio = write_wav(tmp_path / "speech.wav", speech_like(1.0))
    target = tmp_path / "clip.mp4"
    with VideoWriter(target, 25, (64, 64), audio, stall_timeout_s=0.5) as video:
        for _ in range(3):
            video.write(_frames(5, 64))
            time.sleep(1.0)  # the engine thinking: ffmpeg waits on us, which is no stall
    assert target.stat().st_size > 0


def test_the_stall_limit_must_be_positive(monkeypatch, tmp_path):
    from talkbridge.core.media.watchdog import stall_seconds

    assert stall_seconds(2.5) == 2.5
    monkeypatch.setenv("TALKBRIDGE_FFMPEG_STALL_S", "7")
    assert stall_seconds() == 7.0
    with pytest.raises(ValueError):
        stall_seconds(0)
    assert os.environ["TALKBRIDGE_FFMPEG_STALL_S"] == "7"

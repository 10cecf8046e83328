"""The mp4 writer: frames and audio in, a playable H.264 file out, atomically."""

from __future__ import annotations

import subprocess
import wave

from tests.helpers import decoded_frames
import numpy as np
import pytest

from talkbridge.core.errors import InputError
from talkbridge.exporters.video import FFMPEG_ENV, VideoError, VideoWriter, ffmpeg_executable

SIZE = (64, 48)


def write_tone(path, seconds: float = 1.0, rate: int = 16000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return path


def chunk(n: int, level: int) -> np.ndarray:
    return np.full((n, SIZE[1], SIZE[0], 3), level, np.uint8)


def probe(path) -> str:
    return subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr



def test_chunks_become_an_h264_mp4_with_audio(tmp_path):
    tone = write_tone(tmp_path / "tone.wav")
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, 25, SIZE, audio_path=tone) as video:
        video.write(chunk(10, 30))
        video.write(chunk(10, 220)[0])  # a single frame works too
        video.write(chunk(5, 220))
    info = probe(out)
    assert "Video: h264" in info and "25 fps" in info and "Audio: aac" in info
    frames = decoded_frames(out)
    assert len(frames) == 16
    assert abs(int(frames[0].mean()) - 30) < 6 and abs(int(frames[-1].mean()) - 220) < 6
    assert list(tmp_path.glob(".*partial*")) == []


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists"):
        VideoWriter(out, 25, SIZE)
    assert out.read_bytes() == b"precious"
    with VideoWriter(out, 25, SIZE, overwrite=True) as video:
        video.write(chunk(3, 100))
    assert "Video: h264" in probe(out)


def test_failure_midway_leaves_nothing_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="renderer broke"):
        with VideoWriter(out, 25, SIZE, overwrite=True) as video:
            video.write(chunk(3, 100))
            raise RuntimeError("renderer broke")
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_bad_sizes_frames_audio_and_ffmpeg_are_reported(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "a.mp4", 25, (63, 48))
    with pytest.raises(InputError, match="missing.wav"):
        VideoWriter(tmp_path / "a.mp4", 25, SIZE, audio_path=tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="frames must be"):
        with VideoWriter(tmp_path / "b.mp4", 25, SIZE) as video:
            video.write(np.zeros((2, 10, 10, 3), np.uint8))
    assert not (tmp_path / "b.mp4").exists()
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "c.mp4", 25, SIZE):
            pass
    assert not (tmp_path / "c.mp4").exists()
    monkeypatch.setenv(FFMPEG_ENV, str(tmp_path / "no-ffmpeg"))
    with pytest.raises(VideoError, match=FFMPEG_ENV):
        ffmpeg_executable()


def test_interrupt_while_starting_ffmpeg_commits_nothing(tmp_path, monkeypatch):
    """Ctrl-C can land while ffmpeg is being started; the partial file must not take the final name."""
    from talkbridge.exporters import video as video_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_module.subprocess, "Popen", interrupted)
    target = tmp_path / "clip.mp4"
    with pytest.raises(KeyboardInterrupt):
        with video_module.VideoWriter(target, 25, (64, 64)):
            pass
    assert list(tmp_path.iterdir()) == []

"""Audio loading (formats, rates, channels, bad files) and the chunked mel front-end."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from talkbridge.core.audio import load_audio, load_clip
from talkbridge.core.audio.mel import SAMPLES_PER_FRAME, MelWindows, frame_count, log_mel
from talkbridge.core.errors import InputError
from tests.golden_cases import golden_root
from tests.speech import speech_like, write_wav


def test_pcm16_wav_loads_as_scaled_int16(tmp_path):
    samples = speech_like(1.0)
    path = write_wav(tmp_path / "a.wav", samples)
    raw, _ = soundfile.read(path, dtype="int16")
    assert np.array_equal(load_audio(path), raw.astype(np.float32) / 32768)


def test_golden_wav_loads_as_the_official_code_read_it():
    folder = golden_root() / "audio" / "golden" / "mel_chunks"
    expected = np.load(folder / "inputs.npz")["wav"]
    assert np.array_equal(load_audio(folder / "speech.wav"), expected)


@pytest.mark.parametrize("fmt,subtype", [("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_compressed_formats_decode_to_similar_samples(tmp_path, fmt, subtype):
    samples = speech_like(1.0)
    path = tmp_path / f"a.{fmt}"
    soundfile.write(str(path), samples, 16000, subtype=subtype, format=fmt.upper())
    decoded = load_audio(path)
    assert decoded.dtype == np.float32
    assert abs(len(decoded) - len(samples)) < 2000  # mp3 adds encoder delay/padding
    if fmt == "flac":
        assert np.max(np.abs(decoded - samples)) < 1e-4


def test_stereo_44k_is_averaged_and_resampled(tmp_path):
    mono = speech_like(2.0, rate=44100)
    stereo = np.stack([mono, np.zeros_like(mono)], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), stereo, 44100, subtype="FLOAT")
    decoded = load_audio(path)
    assert abs(len(decoded) - 32000) <= 1
    only_left = tmp_path / "left.wav"
    soundfile.write(str(only_left), mono, 44100, subtype="FLOAT")
    assert np.allclose(decoded, load_audio(only_left) / 2, atol=1e-6)


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty"), (b"RIFF....WAVEfmt garbage" * 10, "cannot decode")],
)
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_silence_is_rejected_unless_allowed(tmp_path):
    path = write_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32))
    with pytest.raises(InputError, match="silent") as info:
        load_audio(path)
    assert "silent.wav" in str(info.value)
    assert load_audio(path, allow_silence=True).shape == (16000,)


def test_buffers_are_validated():
    with pytest.raises(InputError, match="NaN"):
        load_clip(np.array([0.1, np.nan], np.float32))
    with pytest.raises(InputError, match="no samples"):
        load_clip(np.zeros(0, np.float32))


def test_frame_count_drops_partial_frames():
    assert frame_count(SAMPLES_PER_FRAME * 3 - 1) == 2
    assert frame_count(SAMPLES_PER_FRAME * 3) == 3


def test_windows_in_any_chunking_equal_the_whole():
    source = MelWindows(speech_like(3.3, seed=4))
    whole = source.windows(0, source.n_frames)
    assert whole.shape == (source.n_frames, 80, 16)
    for cuts in ([0, 1, 2, 40, source.n_frames], [0, 17, 18, 60, source.n_frames]):
        parts = [source.windows(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
        assert np.array_equal(np.concatenate(parts), whole)


def test_window_edges_repeat_first_and_last_rows():
    samples = speech_like(1.0, seed=2)
    mel = log_mel(samples)
    source = MelWindows(samples)
    first = source.windows(0, 1)[0]  # starts at row -6: six copies of row 0, then rows 0..9
    assert np.array_equal(first[:, :7], np.repeat(mel[:1].T, 7, axis=1).astype(np.float32))
    assert np.array_equal(first[:, 7:], mel[1:10].T.astype(np.float32))
    last = source.windows(source.n_frames - 1, source.n_frames)[0]
    assert np.array_equal(last[:, -1], mel[-1].astype(np.float32))


def test_mel_range_is_normalised():
    mel = log_mel(speech_like(2.0))
    assert mel.min() >= -4 and mel.max() <= 4
    assert mel.max() > 0  # speech energy shows up

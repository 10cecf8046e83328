"""Emotion tracks (core/emotion.py) and the ``emotion`` job option: text, keys, files, interpolation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.core.emotion import AUTO, EmotionTrack, emotion_frames, load_emotion_track, parse_emotion_text
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.options import OPTIONS, JobOptions
from talkbridge.core.motion import EMOTIONS

JOY, ANGER, SADNESS = (EMOTIONS.index(name) for name in ("joy", "anger", "sadness"))


def test_text_is_a_constant_track():
    track = parse_emotion_text("joy=0.6, sadness=0.2")
    weights = track.frames(4, 25)
    assert weights.shape == (4, 10) and weights.dtype == np.float32
    np.testing.assert_allclose(weights[:, JOY], 0.6, rtol=1e-6)
    np.testing.assert_allclose(weights[:, SADNESS], 0.2, rtol=1e-6)
    assert weights.sum() == pytest.approx(4 * 0.8, rel=1e-6)


def test_keys_interpolate_linearly_and_hold_outside():
    track = EmotionTrack.from_keys([{"time": 2.0, "anger": 1.0}, {"time": 1.0, "joy": 1.0}])  # any order
    weights = track.frames(40, 10)  # 0 .. 3.9 s
    assert weights[0, JOY] == 1.0 and weights[0, ANGER] == 0.0  # held before the first key
    np.testing.assert_allclose(weights[15], np.eye(10)[JOY] * 0.5 + np.eye(10)[ANGER] * 0.5, atol=1e-6)
    assert weights[-1, ANGER] == 1.0 and weights[-1, JOY] == 0.0  # held after the last key


@pytest.mark.parametrize(
    "text, message",
    [
        ("happy=1", "unknown emotion 'happy'"),
        ("joy", "needs a weight"),
        ("joy=1.5", r"within \[0, 1\]"),
        ("joy=nan", "finite"),
        ("joy=0.1,joy=0.2", "given twice"),
        ("", "empty"),
    ],
)
def test_bad_text_names_the_problem(text, message):
    with pytest.raises(InputError, match=message):
        parse_emotion_text(text)


def test_keys_must_not_share_a_time():
    with pytest.raises(InputError, match="share a time"):
        EmotionTrack.from_keys([{"time": 1.0, "joy": 1.0}, {"time": 1.0, "anger": 1.0}])


def test_track_files_csv_and_json(tmp_path):
    csv_file = tmp_path / "track.csv"
    csv_file.write_text("time,joy,anger\n0,1,0\n2,0,1\n", encoding="utf-8")
    json_file = tmp_path / "track.json"
    json_file.write_text(json.dumps({"keys": [{"time": 0, "joy": 1}, {"time": 2, "anger": 1}]}), encoding="utf-8")
    assert load_emotion_track(csv_file) == load_emotion_track(json_file)
    bad = tmp_path / "bad.csv"
    bad.write_text("time,joy\n0,1\n1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.csv: line 3 has 1 cells"):
        load_emotion_track(bad)
    with pytest.raises(InputError, match="not found"):
        load_emotion_track(tmp_path / "missing.csv")


def test_the_option_travels_as_keys_and_comes_back_equal():
    options = JobOptions.from_mapping({"emotion": "joy=0.6,sadness=0.2"})
    wire = options.to_wire()
    assert wire == {"emotion": [{"time": 0.0, "joy": 0.6, "sadness": 0.2}]}
    json.dumps(options.summary())
    again = JobOptions.from_wire(json.loads(json.dumps(wire)), engine="lite", size=None)
    assert again.emotion == options.emotion
    assert OPTIONS["emotion"].parse("auto") == AUTO and emotion_frames(AUTO, 5, 25) is None
    assert OPTIONS["emotion"].parse("") is None
    with pytest.raises(InputError, match=r"option 'emotion' \(--emotion\): .*unknown emotion"):
        JobOptions.from_mapping({"emotion": [{"time": 0, "glee": 1}]})

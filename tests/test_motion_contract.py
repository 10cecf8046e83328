"""The motion contract (core/motion.py CHANNELS): every channel travels by name through the motion
file, the curves table, the wire's chunk schema and the name matcher, and bad shapes name the channel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import step_from_message, step_messages
from talkbridge.core.jobs.steps import Step
from talkbridge.core.errors import InputError
from talkbridge.core.motion import CHANNEL, CHANNELS, EMOTIONS, TONGUE_16, Motion, MotionChunk
from talkbridge.exporters.curves import curve_table
from talkbridge.exporters.motion_file import load_motion, save_motion
from talkbridge.exporters.naming import match_targets, motion_channels


def full_chunk(start: int = 0, frames: int = 7) -> MotionChunk:
    """A chunk with every channel of the contract, each value distinct."""
    rng = np.random.default_rng(start + frames)
    arrays = {channel.name: rng.random((frames,) + channel.frame_shape).astype(np.float32) for channel in CHANNELS}
    return MotionChunk.from_arrays(start, arrays)


def test_every_channel_is_declared_once_with_columns_matching_its_width():
    assert [c.name for c in CHANNELS] == list(CHANNEL)
    for channel in CHANNELS:
        assert len(channel.columns) == channel.width, channel.name
    assert {c.name for c in CHANNELS if c.required} == {"pose", "blink"}


def test_chunk_codec_round_trips_every_channel_and_refuses_unknown_names():
    chunk = full_chunk(3)
    again = MotionChunk.from_arrays(chunk.start, chunk.arrays())
    assert list(again.arrays()) == list(CHANNEL)
    for name, values in chunk.arrays().items():
        np.testing.assert_array_equal(again.arrays()[name], values)
    piece = chunk.piece(2, 3)
    assert piece.start == 5 and piece.jaw.shape == (3, 4, 4) and piece.tongue.shape == (3, 16)
    with pytest.raises(ValueError, match="unknown channel 'mouth'"):
        MotionChunk.from_arrays(0, {**chunk.arrays(), "mouth": chunk.blink})
    assert chunk.replace(tongue=None).tongue is None


@pytest.mark.parametrize(
    "name, bad",
    [("tongue", np.zeros((7, 15))), ("jaw", np.zeros((7, 16))), ("emotion", np.zeros((6, 10))), ("pose", np.zeros((7, 5)))],
)
def test_a_wrong_shape_names_the_channel(name, bad):
    arrays = full_chunk().arrays()
    arrays[name] = bad
    with pytest.raises(ValueError, match=f"motion channel '{name}' has shape"):
        MotionChunk.from_arrays(0, arrays)
    with pytest.raises(ValueError, match=f"motion channel '{name}' has shape"):
        Motion(fps=25, engine="x", engine_version="1", **arrays)


def test_motion_file_keeps_every_channel_with_its_names(tmp_path):
    chunk = full_chunk()
    motion = Motion.from_chunks([chunk.piece(0, 4), chunk.piece(4, 3)], engine="test", engine_version="1")
    path = save_motion(motion, tmp_path / "m.motion.npz")
    with np.load(path) as data:
        assert tuple(data["tongue_names"]) == TONGUE_16 and tuple(data["emotion_names"]) == EMOTIONS
    loaded = load_motion(path)
    for name, values in motion.arrays().items():
        np.testing.assert_array_equal(getattr(loaded, name), values)


def test_motion_file_with_a_channel_of_the_wrong_shape_is_an_input_error(tmp_path):
    chunk = full_chunk()
    motion = Motion(fps=25, engine="test", engine_version="1", **chunk.arrays())
    path = save_motion(motion, tmp_path / "m.motion.npz")
    with np.load(path) as data:
        entries = {key: data[key] for key in data.files}
    entries["jaw"] = entries["jaw"].reshape(7, 16)
    broken = tmp_path / "broken.motion.npz"
    np.savez(broken, **entries)
    with pytest.raises(InputError, match=r"broken\.motion\.npz: .*'jaw' array has shape \(7, 16\)"):
        load_motion(broken)


def test_curves_name_every_column_of_every_channel():
    chunk = full_chunk()
    motion = Motion(fps=25, engine="test", engine_version="1", **chunk.arrays())
    names, values = curve_table(motion)
    assert len(names) == values.shape[1] == sum(channel.width for channel in CHANNELS)
    assert "tongueRollLeft" in names and "joy" in names and "jaw_03" in names
    np.testing.assert_array_equal(values[:, names.index("jaw_03")], chunk.jaw[:, 0, 3])
    np.testing.assert_array_equal(values[:, names.index("joy")], chunk.emotion[:, EMOTIONS.index("joy")])


def test_the_wire_carries_every_channel():
    chunk = full_chunk(11)
    frames = np.arange(chunk.n_frames * 48, dtype=np.uint8).reshape(chunk.n_frames, 4, 4, 3)
    (message,) = step_messages("job1", Step(chunk, frames))
    decoded = p.decode(p.encode(message))  # the client's default limits take every channel
    back = step_from_message(decoded.body, decoded.buffers)
    for name, values in chunk.arrays().items():
        np.testing.assert_array_equal(back.chunk.arrays()[name], values)
    np.testing.assert_array_equal(back.frames, frames)
    chunk_message = p.Message(p.CHUNK, "job1", {"start": 0, "n_frames": 7}, {"jaw": chunk.jaw})
    assert p.decode(p.encode(chunk_message)).buffers["jaw"].shape == (7, 4, 4)


def test_tongue_and_emotion_shapes_are_driven_by_name():
    motion = Motion(fps=25, engine="test", engine_version="1", **full_chunk().arrays())
    channels = motion_channels(motion)
    report = match_targets(["TongueRollLeft", "tongue_tip_up", "Joy", "jawOpen", "Hat"], set(channels))
    bound = {m.target: m.channel for m in report.matches}
    assert bound == {"TongueRollLeft": "tongueRollLeft", "tongue_tip_up": "tongueTipUp", "Joy": "joy", "jawOpen": "jawOpen"}
    np.testing.assert_array_equal(channels["tongueRollLeft"], motion.tongue[:, TONGUE_16.index("tongueRollLeft")])
    assert report.unmatched_targets == ["Hat"]
    json.dumps(report.to_dict())

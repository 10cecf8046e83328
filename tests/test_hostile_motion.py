"""Motion is finite when it leaves any engine, and motion files are validated against the contract."""

from __future__ import annotations

import numpy as np
import pytest

from talkbridge.core.errors import TalkbridgeError
from talkbridge.core.motion import MotionChunk


class NanEngine:
    """A plug-in engine whose second chunk has a NaN pose (an engine overflowing on odd input)."""

    name = "nan-engine"
    version = "0"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def stream_motion(self, request):
        for start in (0, 10):
            pose = np.zeros((10, 6), np.float32)
            if start:
                pose[3, 1] = np.nan
            yield MotionChunk(start, pose, np.zeros(10, np.float32))


@pytest.fixture
def nan_engine(monkeypatch):
    from talkbridge.core import engine as engine_module

    monkeypatch.setitem(engine_module.ENGINE_FACTORIES, "nan-engine", f"{__name__}:NanEngine")


def test_a_local_job_stops_at_non_finite_motion_naming_channel_and_frame(nan_engine):
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.core.jobs.local import open_local_job

    stream = open_local_job(JobRequest(np.full(3200, 0.1, np.float32), options=JobOptions(engine="nan-engine")), render=False)
    with pytest.raises(TalkbridgeError, match=r"NaN or infinite values in the 'pose' motion channel \(first at frame 13"):
        list(stream.steps)


def test_the_sidecar_answers_bad_input_not_done_for_non_finite_motion(nan_engine):
    from talkbridge.bridge import protocol as p
    from talkbridge.bridge.client import Client
    from talkbridge.bridge.jobs import EngineRunner
    from talkbridge.bridge.server import Server, ServerConfig

    with Server(EngineRunner(), ServerConfig(bind="tcp://127.0.0.1:*", devices=("cpu",))) as server:
        client = Client(server.address)
        try:
            client.connect(timeout=5)
            final = client.submit("nan-engine", audio=np.full(3200, 0.1, np.float32)).result().final
        finally:
            client.close()
    assert final.type == p.ERROR and final.code == p.E_BAD_INPUT and final.body["retryable"] is False
    assert "'pose'" in final.body["message"]


# ---------------------------------------------------------------------------------- motion files


def _valid_entries(tmp_path):
    from talkbridge.core.motion import ARKIT_52, Motion
    from talkbridge.exporters.motion_file import save_motion

    frames = 12
    motion = Motion(
        fps=25, engine="lite", engine_version="1.0", pose=np.zeros((frames, 6), np.float32), blink=np.zeros(frames, np.float32),
        arkit=np.full((frames, len(ARKIT_52)), 0.2, np.float32), visemes=np.zeros((frames, 15), np.float32), metadata={"a": 1},
    )
    path = save_motion(motion, tmp_path / "ok.motion.npz")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _write(tmp_path, entries, name="edited.motion.npz"):
    path = tmp_path / name
    with open(path, "wb") as handle:
        np.savez(handle, **entries)
    return path


@pytest.mark.parametrize("change,message", [
    ({"pose": np.zeros(12, np.float32)}, r"'pose' array has shape \(12,\); the motion contract wants \(T, 6\)"),
    ({"pose": np.zeros((12, 5), np.float32)}, r"'pose' array has shape \(12, 5\)"),
    ({"arkit": np.zeros((12, 3), np.float32)}, r"'arkit' array has shape \(12, 3\); the motion contract wants \(T, 52\)"),
    ({"visemes": np.zeros((11, 15), np.float32)}, "'visemes' array has 11 frames, the pose has 12"),
    ({"metadata_json": np.array("{not json")}, "metadata_json is not valid JSON"),
    ({"metadata_json": np.array("[1, 2]")}, "metadata_json must be a JSON object"),
    ({"pose": np.zeros((0, 6), np.float32), "blink": np.zeros(0, np.float32), "arkit": np.zeros((0, 52), np.float32),
      "visemes": np.zeros((0, 15), np.float32)}, "0 frames"),
    ({"pose": np.array([[0, np.nan, 0, 0, 0, 0]] * 12, np.float32)}, r"'pose' array holds NaN or infinite values \(12, first at index \(0, 1\)\)"),
    ({"blink": np.full(12, np.inf, np.float32)}, "'blink' array holds NaN"),
    ({"pose": np.array([[0, 45.0, 0, 0, 0, 0]] * 12, np.float32)}, r"'pose' array holds 45 at index \(0, 1\), outside -6.283..6.283"),
    ({"arkit": np.full((12, 52), 1e30, np.float32)}, "'arkit' array holds 1e\\+30"),
    ({"pose": np.array([["a"] * 6] * 12)}, "'pose' array holds <U1 values, not real numbers"),
    ({"fps": np.array(0)}, "fps 0 is outside"),
    ({"fps": np.array("25")}, "'fps' entry must be a single number"),
    ({"version": np.array([1, 2])}, "'version' entry must be a single integer"),
    ({"arkit_names": np.arange(52)}, "arkit channel names"),
])
def test_a_bad_motion_file_is_refused_naming_the_array_and_the_problem(tmp_path, change, message):
    from talkbridge.core.errors import InputError
    from talkbridge.exporters.motion_file import load_motion

    entries = {**_valid_entries(tmp_path), **change}
    path = _write(tmp_path, entries)
    with pytest.raises(InputError, match=message) as info:
        load_motion(path)
    assert "edited.motion.npz" in str(info.value)


def test_a_missing_entry_is_named(tmp_path):
    from talkbridge.core.errors import InputError
    from talkbridge.exporters.motion_file import load_motion

    entries = _valid_entries(tmp_path)
    del entries["blink"]
    with pytest.raises(InputError, match="lacks the 'blink' entry"):
        load_motion(_write(tmp_path, entries))


def test_export_and_livelink_refuse_a_bad_motion_file_without_a_traceback(tmp_path, caplog):
    from talkbridge.cli import main

    entries = {**_valid_entries(tmp_path), "pose": np.zeros((12, 5), np.float32)}
    path = _write(tmp_path, entries, "five.motion.npz")
    code = main(["export", str(path), "--format", "livelink", "-o", str(tmp_path / "take.csv")])
    assert code != 0 and not (tmp_path / "take.csv").exists()
    assert any("'pose' array has shape (12, 5)" in record.getMessage() for record in caplog.records)


def test_a_valid_file_still_round_trips(tmp_path):
    from talkbridge.exporters.motion_file import load_motion

    motion = load_motion(_write(tmp_path, _valid_entries(tmp_path)))
    assert motion.n_frames == 12 and motion.metadata == {"a": 1} and np.allclose(motion.arkit, 0.2)

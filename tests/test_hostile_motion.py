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

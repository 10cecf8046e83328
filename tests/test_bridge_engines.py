"""A full job for each real engine through the sidecar equals the same job run in-process.

The lite engine needs no weights; the SadTalker engine runs on deterministic test weights written
in the official checkpoint layout (tests/sadtalker_weights.py), so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client, JobResult
from talkbridge.core.engine import MotionRequest, create_engine
from talkbridge.core.motion import Motion
from tests.sidecars import sidecar
from tests.speech import speech_like, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.usefixtures("one_torch_thread")]



@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_like(2.0, seed=5))


def _through_sidecar(engine_kwargs: dict | None, engine: str, **inputs) -> JobResult:
    """The job on a sidecar whose engines run in a worker process, as `talkbridge serve` runs them."""
    with sidecar(engine_kwargs=engine_kwargs) as server:
        client = Client(server.address)
        try:
            client.connect()
            result = client.submit(engine, **inputs).result()
        finally:
            client.close()
    assert result.final.type == p.DONE, result.final
    return result


def test_lite_job_with_preview_frames_equals_the_in_process_result(speech):
    from talkbridge.core.lite.mannequin import build_mannequin
    from talkbridge.core.lite.preview import PreviewRenderer

    result = _through_sidecar(None, "lite", audio=speech, options={"chunk_frames": 20, "seed": 2}, render_size=256)
    engine = create_engine("lite")
    chunks = list(engine.stream_motion(MotionRequest(audio=speech, chunk_frames=20, seed=2)))
    expected = Motion.from_chunks(chunks, engine=engine.name, engine_version=engine.version)
    streamed = result.chunks
    got = result.motion()
    assert (got.engine, got.engine_version) == (engine.name, engine.version)
    assert len(streamed) == len(chunks) > 1 and got.n_frames == expected.n_frames == 50
    for name in ("pose", "blink", "arkit", "visemes"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    assert got.expression is None
    renderer = PreviewRenderer(build_mannequin(), size=256)
    expected_frames = np.concatenate([renderer.render(chunk) for chunk in chunks])
    assert np.array_equal(np.concatenate([e.arrays["frames"] for e in streamed]), expected_frames)


def test_sadtalker_job_equals_the_in_process_result(speech, tmp_path):
    from tests.sadtalker_weights import write_combined_safetensors

    write_combined_safetensors(tmp_path, seed=7)
    first_frame = np.random.default_rng(0).normal(0, 0.3, 73).astype(np.float32)
    result = _through_sidecar(
        {"sadtalker": {"checkpoint_dir": str(tmp_path)}}, "sadtalker", audio=speech.read_bytes(), first_frame=first_frame, options={"chunk_frames": 16, "seed": 4, "expression_scale": 1.5}
    )
    engine = create_engine("sadtalker", checkpoint_dir=tmp_path)
    request = MotionRequest(audio=speech, first_frame=first_frame, chunk_frames=16, seed=4, expression_scale=1.5)
    expected = Motion.from_chunks(engine.stream_motion(request), engine=engine.name, engine_version=engine.version)
    got = result.motion()
    assert len(result.chunks) == 4 and got.n_frames == expected.n_frames == 50 and got.engine == "sadtalker"
    assert np.allclose(got.coefficients(), expected.coefficients(), atol=1e-6)
    assert np.array_equal(got.blink, expected.blink)


def test_sadtalker_job_from_a_portrait_and_landmarks(speech, tmp_path):
    """No first frame on the wire: the sidecar reconstructs it from the submitted portrait."""
    import cv2

    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import landmarks_y_down

    folder = write_official_checkpoint_dir(tmp_path / "checkpoints", render=False)
    image, landmarks = landmarks_y_down()
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    assert ok
    portrait = tmp_path / "portrait.png"
    portrait.write_bytes(png.tobytes())
    result = _through_sidecar(
        {"sadtalker": {"checkpoint_dir": str(folder)}}, "sadtalker", audio=speech.read_bytes(), image=portrait.read_bytes(),
        options={"chunk_frames": 25, "seed": 1, "landmarks": landmarks.tolist()},
    )
    engine = create_engine("sadtalker", checkpoint_dir=folder)
    request = MotionRequest(audio=speech, image=portrait, chunk_frames=25, seed=1, options={"landmarks": landmarks})
    expected = Motion.from_chunks(engine.stream_motion(request), engine=engine.name, engine_version=engine.version)
    got = result.motion()
    assert got.n_frames == expected.n_frames == 50
    assert np.allclose(got.coefficients(), expected.coefficients(), atol=1e-5)


def test_sadtalker_references_travel_as_files(speech, tmp_path):
    """A reference .mat sent as bytes drives the job exactly as the same file does in-process; a
    reference video is reconstructed on the server, which says what it lacks to do so."""
    import os

    import cv2

    from talkbridge.exporters.coeff_mat import write_coeff_mat
    from tests.sadtalker_weights import write_combined_safetensors

    write_combined_safetensors(tmp_path, seed=7)
    first_frame = np.random.default_rng(1).normal(0, 0.3, 73).astype(np.float32)
    reference = write_coeff_mat(tmp_path / "ref.mat", np.random.default_rng(2).normal(0, 0.3, (20, 70)))
    result = _through_sidecar(
        {"sadtalker": {"checkpoint_dir": str(tmp_path)}}, "sadtalker", audio=speech.read_bytes(), first_frame=first_frame, ref_pose=reference, ref_eyeblink=reference.read_bytes(),
        options={"chunk_frames": 25, "seed": 4},
    )
    engine = create_engine("sadtalker", checkpoint_dir=tmp_path)
    request = MotionRequest(audio=speech, first_frame=first_frame, chunk_frames=25, seed=4, ref_pose=reference, ref_eyeblink=reference)
    expected = Motion.from_chunks(engine.stream_motion(request), engine=engine.name, engine_version=engine.version)
    unreferenced = Motion.from_chunks(
        engine.stream_motion(MotionRequest(audio=speech, first_frame=first_frame, chunk_frames=25, seed=4)), engine="s", engine_version=""
    )
    got = result.motion()
    assert np.allclose(got.coefficients(), expected.coefficients(), atol=1e-6)
    assert not np.allclose(got.pose, unreferenced.pose, atol=1e-3)  # the reference really moved the head

    video = tmp_path / "ref.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64))
    for _ in range(3):
        writer.write(np.full((64, 64, 3), 90, np.uint8))
    writer.release()
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(tmp_path / "no_torch_hub")  # no detector weights there
    try:
        from tests.official_checkpoints import write_official_checkpoint_dir

        with_recon = {"sadtalker": {"checkpoint_dir": str(write_official_checkpoint_dir(tmp_path / "ckpt", render=False))}}
        with sidecar(engine_kwargs=with_recon) as server:
            client = Client(server.address)
            try:
                client.connect()
                failed = client.submit("sadtalker", audio=speech, first_frame=first_frame, ref_eyeblink=video).result()
            finally:
                client.close()
    finally:
        if previous is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = previous
    assert failed.final.type == p.ERROR and not failed.final.body["retryable"]
    assert "face-alignment" in failed.final.body["message"] and "talkbridge models download" in failed.final.body["message"]

"""SadTalker frames: the job layer's chunk/frame pairing, wire option checks, and a whole sidecar job.

The whole-job test writes checkpoints in the official layout (recipe weights) and then narrows the
face renderer to the tiny test configuration so 50 frames take seconds on CPU; every other stage
(face crop and reconstruction, audio networks, paste-back, the wire) is the real one.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from talkbridge.bridge import protocol as p
from talkbridge.bridge.client import Client
from talkbridge.bridge.jobs import EngineRunner, JobSpec
from talkbridge.core.errors import InputError
from talkbridge.core.jobs import JobOptions
from talkbridge.core.jobs.sadtalker_job import FramePairing
from talkbridge.core.motion import MotionChunk
from tests.sidecars import sidecar
from tests.speech import speech_like, write_wav


def _chunks(sizes: list[int]) -> list[MotionChunk]:
    chunks, start = [], 0
    for n in sizes:
        chunks.append(MotionChunk(start, np.zeros((n, 6), np.float32), np.zeros(n, np.float32), np.random.default_rng(start).normal(size=(n, 64)).astype(np.float32)))
        start += n
    return chunks


def _numbered_frames(start: int, n: int) -> np.ndarray:
    """Frames whose every pixel holds the frame's index (mod 256), so order is visible."""
    return (np.arange(start, start + n, dtype=np.int64) % 256).astype(np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)


@pytest.mark.parametrize(
    ("chunk_sizes", "batch_sizes"),
    [([10, 10, 5], [4] * 6 + [1]), ([25], [1] * 25), ([3, 7, 11], [21]), ([5, 5], [2, 8]), ([300, 1], [7] * 43)],
)
def test_each_chunk_gets_exactly_its_frames(chunk_sizes, batch_sizes):
    chunks = _chunks(chunk_sizes)
    pairing = FramePairing(chunks, feed_rows=10_000)  # one piece per chunk: the reads below count chunks
    coefficients = pairing.coefficients()

    def batches():
        start, read = 0, 0
        for n in batch_sizes:
            while read < len(chunks) and chunks[read].start <= start + n:
                next(coefficients)  # the renderer reads motion before rendering it
                read += 1
            yield _numbered_frames(start, n)
            start += n

    steps = list(pairing.pair(batches()))
    assert sum(step.chunk.n_frames for step in steps) == sum(chunk_sizes)
    assert max(len(step.frames) for step in steps) <= max(batch_sizes)  # a step holds one batch, never a chunk
    boundaries = {chunk.stop for chunk in chunks}
    frame = 0
    for step in steps:
        assert step.chunk.start == frame and step.frames.shape == (step.chunk.n_frames, 2, 2, 3)
        assert np.array_equal(step.frames, _numbered_frames(frame, step.chunk.n_frames))
        owner = next(c for c in chunks if c.start <= frame < c.stop)
        assert step.chunk.stop <= owner.stop  # no step crosses a chunk boundary
        assert np.array_equal(step.chunk.expression, owner.expression[frame - owner.start : step.chunk.stop - owner.start])
        frame = step.chunk.stop
    assert frame in boundaries


def test_the_renderer_is_fed_a_second_of_rows_at_a_time():
    chunks = _chunks([60, 7])
    pieces = list(FramePairing(chunks).coefficients())
    assert [len(piece) for piece in pieces] == [25, 25, 10, 7]
    assert np.array_equal(np.concatenate(pieces), np.concatenate([chunk.coefficients() for chunk in chunks]))


def test_pairing_reports_frames_the_motion_does_not_cover():
    pairing = FramePairing(_chunks([10]))
    list(pairing.coefficients())
    with pytest.raises(RuntimeError, match="before reading its motion"):
        list(pairing.pair(iter([_numbered_frames(0, 12)])))
    short = FramePairing(_chunks([10]))
    list(short.coefficients())
    with pytest.raises(RuntimeError, match="chunks of motion left"):
        list(short.pair(iter([_numbered_frames(0, 6)])))


def test_wire_options_become_job_options():
    landmarks = np.random.default_rng(0).uniform(0, 200, (68, 2)).tolist()
    wire = {"pose_style": 7, "still": True, "expression_scale": 1.5, "seed": 3, "chunk_frames": 40,
            "preprocess": "extfull", "batch_size": 4, "landmarks": landmarks, "yaw": [0, 20.5], "roll": [-5]}
    options = JobOptions.from_wire(wire, engine="sadtalker", size=256)
    assert (options.preprocess, options.batch_size, options.pose_style, options.still) == ("extfull", 4, 7, True)
    assert (options.expression_scale, options.seed, options.chunk_frames, options.size) == (1.5, 3, 40, 256)
    assert options.landmarks.shape == (68, 2) and options.landmarks.dtype == np.float32
    assert options.yaw == (0.0, 20.5) and options.pitch is None and options.roll == (-5.0,)
    assert JobOptions.from_wire(options.to_wire(), engine="sadtalker", size=256) == options  # the wire round-trips


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"preprocess": "zoom"}, "preprocess"),
        ({"preprocess": 3}, "preprocess"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": 1000}, "batch_size"),
        ({"landmarks": [[1, 2]] * 10}, "68 or 5"),
        ({"landmarks": [[1, "x"]] * 5}, "landmarks"),
        ({"landmarks": [[1, float("nan")]] * 5}, "68 or 5"),
        ({"yaw": []}, "yaw"),
        ({"pitch": [1, "up"]}, "pitch"),
        ({"roll": 5}, "roll"),
        ({"zoom": 2}, "unknown option 'zoom'"),
        ({"seed": 2**40}, "seed"),
    ],
)
def test_bad_render_options_are_refused_by_name(extra, message):
    with pytest.raises(InputError, match=message):
        JobOptions.from_wire(extra, engine="sadtalker", size=256)


def test_render_without_a_portrait_or_checkpoints_is_a_clear_error(tmp_path, monkeypatch):
    from tests.official_checkpoints import write_official_checkpoint_dir

    monkeypatch.setenv("TALKBRIDGE_MODELS", str(tmp_path / "empty_store"))
    folder = write_official_checkpoint_dir(tmp_path / "ckpt", render=False)
    audio = np.zeros(16000, np.float32)
    job = JobSpec("j1", "sadtalker", audio_pcm=audio, render_size=256)
    with pytest.raises(InputError, match="no SadTalker checkpoints"):
        list(EngineRunner().run(JobSpec("j0", "sadtalker", audio_pcm=audio, image_file=np.ones(4, np.uint8), render_size=256), "cpu", threading.Event()))
    with pytest.raises(InputError, match="portrait image"):
        list(EngineRunner({"sadtalker": {"checkpoint_dir": str(folder)}}).run(job, "cpu", threading.Event()))
    with pytest.raises(InputError, match="render_size 128"):
        list(EngineRunner({"sadtalker": {"checkpoint_dir": str(folder)}}).run(
            JobSpec("j2", "sadtalker", audio_pcm=audio, render_size=128), "cpu", threading.Event()
        ))
    assert "sadtalker" in EngineRunner({"sadtalker": {"checkpoint_dir": str(folder)}}).capabilities()["render_engines"]
    assert "sadtalker" not in EngineRunner({"sadtalker": {"checkpoint_dir": str(tmp_path)}}).capabilities()["render_engines"]
    assert "sadtalker" not in EngineRunner().capabilities()["render_engines"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sidecar_sadtalker_frames_equal_the_in_process_video(tmp_path):
    from talkbridge.core.jobs import JobRequest
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.local import open_local_job
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import tiny_recipe_models, write_landmarked_portrait

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = write_official_checkpoint_dir(tmp_path / "checkpoints", render=False)
        tiny = tiny_recipe_models(seed=3)
        portrait = tmp_path / "portrait.png"
        _, landmarks = write_landmarked_portrait(portrait)
        speech = write_wav(tmp_path / "speech.wav", speech_like(0.9, seed=5))
        options = {"chunk_frames": 20, "seed": 2, "expression_scale": 1.25, "landmarks": landmarks.tolist(), "batch_size": 3, "yaw": [0, 15]}

        with sidecar("tests.sidecars:tiny_sadtalker_runner", checkpoint_dir=str(folder), seed=3) as server:
            client = Client(server.address)
            try:
                welcome = client.connect()
                assert "sadtalker" in welcome["capabilities"]["render_engines"]
                result = client.submit(
                    "sadtalker", audio=speech.read_bytes(), image=portrait.read_bytes(), options=options, render_size=256
                ).result()
            finally:
                client.close()
        assert result.final.type == p.DONE, result.final

        cache = EngineCache(folder)
        cache.sadtalker("cpu").provide_renderer(256, "crop", tiny)
        local = open_local_job(JobRequest(speech, portrait, JobOptions.from_mapping({**options, "engine": "sadtalker", "device": "cpu"})), cache)
        local_steps = list(local.steps)
        expected_frames = np.concatenate([step.frames for step in local_steps])
    finally:
        torch.set_num_threads(previous)

    streamed = result.chunks
    got_frames = np.concatenate([event.arrays["frames"] for event in streamed])
    assert got_frames.shape == expected_frames.shape and got_frames.shape[0] == 22
    assert (got_frames.shape[2], got_frames.shape[1]) == local.info.frame_size
    assert np.array_equal(got_frames, expected_frames)
    for event in streamed:  # each message's frames belong to its own motion frames
        assert event.arrays["frames"].shape[0] == event.body["n_frames"]
    motion = result.motion()
    assert motion.engine == "sadtalker" and motion.n_frames == 22
    official = np.concatenate([step.chunk.expression for step in local_steps])
    assert np.array_equal(motion.expression, official)  # the wire carries the official rows ...
    assert result.info.expression_scale == 1.25  # ... and the scale beside them, in the job's facts
    assert np.array_equal(motion.pose, np.concatenate([step.chunk.pose for step in local_steps]))

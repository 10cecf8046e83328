"""Rendering one batch ahead of paste-back and encoding changes nothing but the timing."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from talkbridge.core.jobs.overlap import ahead

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_items_keep_their_order_and_values():
    assert list(ahead(iter(range(100)), depth=3)) == list(range(100))
    assert list(ahead(iter([]))) == []


def test_the_producer_really_runs_ahead_of_the_consumer():
    """While the consumer holds item i, the producer goes on to make item i + 1 by itself."""
    produced: list[int] = []
    made = threading.Condition()

    def source():
        for i in range(6):
            with made:
                produced.append(i)
                made.notify_all()
            yield i

    for item in ahead(source(), depth=2):
        if item < 5:
            with made:
                assert made.wait_for(lambda: len(produced) >= item + 2, timeout=5.0), (item, produced)
    assert produced == list(range(6))


def test_a_producer_error_reaches_the_consumer_in_place():
    def failing():
        yield 1
        yield 2
        raise RuntimeError("device fell over")

    got = []
    with pytest.raises(RuntimeError, match="device fell over"):
        for item in ahead(failing()):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_producer_and_its_thread():
    made = []
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                made.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    stream = ahead(endless(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert closed.wait(2.0)
    count = len(made)
    time.sleep(0.1)
    assert len(made) == count <= 4  # nothing runs on after the job
    assert not [t for t in threading.enumerate() if t.name == "talkbridge-ahead"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sadtalker_job_gives_the_same_steps_with_and_without_overlap(tmp_path):
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.local import open_local_job
    from tests.official_checkpoints import write_official_checkpoint_dir
    from tests.render_helpers import landmarks_y_down, tiny_recipe_models
    from tests.speech import speech_like, write_wav

    folder = write_official_checkpoint_dir(tmp_path / "checkpoints")
    image, landmarks = landmarks_y_down()
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), np.ascontiguousarray(image[:, :, ::-1]))
    speech = write_wav(tmp_path / "speech.wav", speech_like(1.2, seed=6))
    cache = EngineCache(folder)
    cache.sadtalker("cpu").provide_renderer(256, "crop", tiny_recipe_models(seed=4))
    request = JobRequest(speech, portrait, JobOptions(engine="sadtalker", landmarks=landmarks, device="cpu", batch_size=3, seed=2))
    runs = [list(open_local_job(request, cache, overlap=overlap).steps) for overlap in (True, False)]
    assert [s.chunk.start for s in runs[0]] == [s.chunk.start for s in runs[1]]
    for a, b in zip(*runs):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.chunk.coefficients(), b.chunk.coefficients())

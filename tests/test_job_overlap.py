"""Rendering one batch ahead of paste-back and encoding changes nothing but the timing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from talkbridge.core.jobs.overlap import ahead, cpu_workers, map_batches

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
def test_a_sadtalker_job_gives_the_same_steps_with_and_without_overlap_and_paste_threads(tmp_path):
    """Full mode (seamless cloning into the photo): rendering ahead and pasting on three threads
    change nothing but the speed."""
    from talkbridge.core.jobs import JobOptions, JobRequest
    from talkbridge.core.jobs.cache import EngineCache
    from talkbridge.core.jobs.local import open_local_job
    from tests.render_helpers import portrait_job_inputs, tiny_recipe_models

    made = portrait_job_inputs(tmp_path, 0.6, seed=6, render=False)
    portrait, image, landmarks, speech = made.portrait, made.image, made.landmarks, made.speech
    cache = EngineCache(made.checkpoints)
    cache.sadtalker("cpu").provide_renderer(256, "full", tiny_recipe_models(seed=4))
    options = JobOptions(engine="sadtalker", landmarks=landmarks, device="cpu", batch_size=3, seed=2, preprocess="full")
    request = JobRequest(speech, portrait, options)
    variants = ((False, 1), (True, 1), (True, 3), (False, 2))
    runs = [list(open_local_job(request, cache, overlap=overlap, paste_workers=workers).steps) for overlap, workers in variants]
    assert runs[0][0].frames.shape[1:] == (image.shape[0], image.shape[1], 3)  # pasted into the whole photo
    for run in runs[1:]:
        assert [s.chunk.start for s in run] == [s.chunk.start for s in runs[0]]
        for a, b in zip(runs[0], run):
            assert np.array_equal(a.frames, b.frames) and np.array_equal(a.chunk.coefficients(), b.chunk.coefficients())


def _slow_square(value: int) -> int:
    time.sleep(0.002 * (value % 3))  # finish out of order
    return value * value


def test_map_batches_keeps_batches_and_order_on_any_number_of_threads():
    batches = [list(range(start, start + n)) for start, n in ((0, 5), (5, 1), (6, 7), (13, 3))]
    expected = [[v * v for v in batch] for batch in batches]
    for workers in (1, 2, 4):
        assert list(map_batches(_slow_square, iter(batches), workers)) == expected


def test_map_batches_really_uses_several_threads():
    meeting = threading.Barrier(3, timeout=10)  # three items must run at the same time to pass

    def meet(value: int) -> str:
        meeting.wait()
        return threading.current_thread().name

    [names] = list(map_batches(meet, [[1, 2, 3]], workers=3))
    assert len(set(names)) == 3 and all(name.startswith("talkbridge-cpu") for name in names)


def test_map_batches_raises_an_item_error_in_order_and_closing_early_cancels_the_rest():
    started: list[int] = []

    def fail_on_four(value: int) -> int:
        started.append(value)
        if value == 4:
            raise ValueError("frame 4 is broken")
        return value

    results = map_batches(fail_on_four, [[1, 2], [3, 4], [5, 6]], workers=2, depth=1)
    assert next(results) == [1, 2]
    with pytest.raises(ValueError, match="frame 4 is broken"):
        next(results)

    seen: list[int] = []

    def slow(value: int) -> int:
        seen.append(value)
        time.sleep(0.05)
        return value

    lazy = map_batches(slow, ([i] * 4 for i in range(100)), workers=2, depth=1)
    assert next(lazy) == [0] * 4
    lazy.close()  # waits for running items, cancels the queued ones
    count = len(seen)
    time.sleep(0.2)
    assert len(seen) == count < 400


def test_paste_threads_follow_the_device():
    assert cpu_workers("cpu") == 1
    assert 1 <= cpu_workers("cuda") <= 8
    assert cpu_workers("cuda", limit=2) <= 2

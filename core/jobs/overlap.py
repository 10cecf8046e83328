"""Run a producer one step ahead of its consumer, so GPU work and CPU work overlap.

A SadTalker job renders frames (the device's work) and then pastes them back into the portrait and
encodes them (the CPU's work). Done in turn, the GPU idles while the CPU finishes each batch. With
:func:`ahead`, the renderer runs in a thread of its own and fills a small bounded queue while the
consumer pastes and writes the previous batches; torch, OpenCV and the ffmpeg pipe all release the
GIL, so the two really run at once. The order of items and every value are unchanged.

Paste-back itself can be slower than a GPU: ``cv2.seamlessClone`` into a 1080 px photo (the full
modes) takes ~100 ms a frame on one core, while a GPU renders a 256 px frame in milliseconds.
:func:`map_batches` spreads that per-frame work over a thread pool, in order, so a many-core GPU box
keeps up with its GPU.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(
    items: Iterable[T], depth: int = 2, name: str = "talkbridge-ahead", setup: Callable[[], None] | None = None
) -> Iterator[T]:
    """Yield ``items`` in order while a thread computes up to ``depth`` of them in advance.

    ``setup`` runs first in the producer's thread: per-thread settings (torch's thread count is
    one) do not carry over from the thread that calls this.

    An exception in the producer is raised in the consumer at the point it would have occurred.
    Closing the returned generator early (a cancel, an error downstream) stops the producer before
    its next item and waits for its thread, so nothing runs on after the job.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            if setup is not None:
                setup()
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            offer(_Failure(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                try:
                    close()
                except Exception:  # noqa: BLE001 - the consumer has already gone
                    pass

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                slots.get_nowait()  # unblock a producer waiting for room
            except queue.Empty:
                pass
            worker.join(timeout=0.05)


def cpu_workers(device_type: str, limit: int = 8) -> int:
    """Threads for per-frame CPU work (paste-back) next to a renderer on ``device_type``.

    One on a CPU, where rendering already uses every core and more threads only contend; on an
    accelerator every core but one (for the job's own thread), at most ``limit``.
    """
    if device_type == "cpu":
        return 1
    return max(1, min(limit, (os.cpu_count() or 2) - 1))


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads for per-frame CPU work, shared by every job in it
    (a sidecar worker running several jobs at once does not multiply its threads)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="talkbridge-cpu")
        return pool


def map_batches(
    function: Callable[[T], R], batches: Iterable[Sequence[T]], workers: int, depth: int = 2
) -> Iterator[list[R]]:
    """``[function(item) for item in batch]`` for every batch, in order, on ``workers`` threads.

    Up to ``depth`` batches are in flight, so the pool starts on the next batch's items while the
    caller still waits for (or writes) the current one; memory stays bounded by ``depth`` batches.
    With one worker nothing is threaded. An exception is raised where its item's result is due.
    Closing the generator early cancels this call's items not yet started and waits for its running
    ones (the pool itself is shared: :func:`shared_pool`).
    """
    if workers <= 1:
        for batch in batches:
            yield [function(item) for item in batch]
        return
    pool = shared_pool(workers)
    pending: deque[list[Future]] = deque()
    try:
        for batch in batches:
            pending.append([pool.submit(function, item) for item in batch])
            while len(pending) > depth:
                yield [future.result() for future in pending.popleft()]
        while pending:
            yield [future.result() for future in pending.popleft()]
    finally:
        left = [future for futures in pending for future in futures]
        for future in left:
            future.cancel()
        wait(left)

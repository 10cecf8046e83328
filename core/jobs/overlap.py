"""Run a producer one step ahead of its consumer, so GPU work and CPU work overlap.

A SadTalker job renders frames (the device's work) and then pastes them back into the portrait and
encodes them (the CPU's work). Done in turn, the GPU idles while the CPU finishes each batch. With
:func:`ahead`, the renderer runs in a thread of its own and fills a small bounded queue while the
consumer pastes and writes the previous batches; torch, OpenCV and the ffmpeg pipe all release the
GIL, so the two really run at once. The order of items and every value are unchanged.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

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

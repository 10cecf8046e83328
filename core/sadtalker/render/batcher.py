"""Shared forward passes for the frames of concurrent render jobs on one device (cross-job batching).

Why: one talking head at a time leaves a GPU mostly idle; a pass of 8 or 32 frames costs little more
than a pass of 1. A sidecar serving several clients therefore lets every job hand its ready frames
to one :class:`FrameBatcher` per renderer, whose render thread stacks frames of different jobs into
one :func:`~.shared_pass.render_slices` call:

* **Batch size.** A pass holds at most ``max_frames`` real frames and always runs at exactly that
  many rows (padding repeats the last frame). A row's result then never depends on the other rows
  or on its position (at a fixed size on one CPU thread: bit for bit, see :mod:`.shared_pass`), so
  each job's frames equal its solo run, alone or among fifteen others.
* **Waiting.** A pass starts as soon as it is full, or when every job that has joined is waiting for
  frames, or ``max_wait_ms`` after the oldest waiting request arrived; a job's frames are never held
  back longer than that for the sake of a fuller pass.
* **Fairness.** Frames are dealt one at a time to the waiting jobs in turn, starting with the job
  served least recently, so every waiting job gets an equal share of each pass (up to one frame)
  whatever its size, and with more jobs than rows the ones left out of a pass lead the next; a job
  with many ready frames cannot crowd out a newcomer's first frames.

The jobs' own threads wait in :meth:`Seat.frames` while the batcher's thread runs the passes (so
all device work for one renderer happens on one thread, in order), and get their share of every
pass back as soon as that pass is done.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from talkbridge.core.sadtalker.render.models import FaceRenderModels
from talkbridge.core.sadtalker.render.shared_pass import FrameSlice, no_frames, render_slices

log = logging.getLogger(__name__)

IDLE_EXIT_S = 5.0  # the render thread ends after this long without requests (a new one starts on demand)


@dataclass(frozen=True)
class BatchPolicy:
    """How a :class:`FrameBatcher` forms passes: ``max_frames`` rows each, at most ``max_wait_ms`` of waiting."""

    max_frames: int = 8
    max_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        if int(self.max_frames) < 1:
            raise ValueError(f"a shared pass needs at least 1 frame, got max_frames={self.max_frames}")
        if not 0 <= float(self.max_wait_ms) <= 10_000:
            raise ValueError(f"max_wait_ms must be between 0 and 10000, got {self.max_wait_ms}")


@dataclass(eq=False)
class _Request:
    """One job's ready frames, rendered over one or more passes; each pass's share is handed back at once."""

    seat: "Seat"
    piece: FrameSlice
    arrived: float
    total: int = field(init=False)  # frames to render: all of ``piece`` unless the job withdraws the rest
    dealt: int = 0  # frames already placed in a pass
    done: int = 0  # frames rendered and handed back
    parts: "queue.SimpleQueue[np.ndarray | BaseException]" = field(default_factory=queue.SimpleQueue)

    def __post_init__(self) -> None:
        self.total = len(self.piece)

    @property
    def undealt(self) -> int:
        return self.total - self.dealt


@dataclass(frozen=True)
class PassRecord:
    """What one shared pass held, for tests and benchmarks: frames per seat id, and padding rows."""

    frames: dict[int, int]
    padding: int


class Seat:
    """One job's place at a :class:`FrameBatcher`: renders that job's frames in shared passes.

    Use as a context manager (or call :meth:`leave`) so the batcher knows when a job has gone and
    does not wait for it.
    """

    def __init__(self, batcher: "FrameBatcher", seat_id: int) -> None:
        self.batcher = batcher
        self.id = seat_id
        self._left = False

    def frames(self, piece: FrameSlice) -> Iterator[np.ndarray]:
        """``piece``'s frames as (n, S, S, 3) uint8 arrays, in order, each as soon as its pass is done.

        A job's share of one pass comes back at once, so its first frames are out after one pass
        (plus at most ``max_wait_ms``), however many frames it asked for. Closing the iterator early
        withdraws the frames not yet placed in a pass.
        """
        if self._left:
            raise RuntimeError("this job has already left its frame batcher")
        return self.batcher._frames(self, piece)

    def render(self, piece: FrameSlice) -> np.ndarray:
        """All of ``piece``'s frames in one array (blocks until the last pass holding them is done)."""
        parts = list(self.frames(piece))
        if not parts:
            return no_frames(piece.source)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def leave(self) -> None:
        if not self._left:
            self._left = True
            self.batcher._leave(self)

    def __enter__(self) -> "Seat":
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()


class FrameBatcher:
    """Renders the frames of every job that joins it in shared passes on ``models``' device.

    ``on_pass`` (tests, benchmarks) is called on the render thread with a :class:`PassRecord` for
    every pass, before its frames are handed back.
    """

    def __init__(
        self,
        models: FaceRenderModels,
        policy: BatchPolicy | None = None,
        on_pass: Callable[[PassRecord], None] | None = None,
    ) -> None:
        self.models = models
        self.policy = policy or BatchPolicy()
        self.on_pass = on_pass
        self._changed = threading.Condition()
        self._pending: list[_Request] = []  # arrival order; at most one per seat
        self._last_dealt: dict[int, int] = {}  # seat id -> the pass that last held its frames
        self._seats = 0
        self._next_seat = 0
        self._thread: threading.Thread | None = None
        self.passes_started = 0
        self.passes = 0
        self.frames = 0
        self.padding = 0

    @property
    def waiting_requests(self) -> int:
        """Requests not yet fully rendered (at most one per job)."""
        with self._changed:
            return len(self._pending)

    @property
    def render_thread_alive(self) -> bool:
        with self._changed:
            return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------------------ seats

    def join(self) -> Seat:
        """A seat for one job; leave it when the job ends."""
        with self._changed:
            self._seats += 1
            self._next_seat += 1
            return Seat(self, self._next_seat)

    def _leave(self, seat: Seat) -> None:
        with self._changed:
            self._seats -= 1
            self._last_dealt.pop(seat.id, None)
            self._changed.notify_all()  # the jobs still here may be all that is left to wait for

    def _frames(self, seat: Seat, piece: FrameSlice) -> Iterator[np.ndarray]:
        if not len(piece):
            return
        request = _Request(seat, piece, time.monotonic())
        with self._changed:
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="talkbridge-frame-batcher", daemon=True)
                self._thread.start()
            self._changed.notify_all()
        received = 0
        try:
            while received < request.total:
                part = request.parts.get()
                if isinstance(part, BaseException):
                    raise part
                received += len(part)
                yield part
        finally:
            if received < request.total:
                self._withdraw(request)

    def _withdraw(self, request: _Request) -> None:
        """The job stopped listening: deal none of its remaining frames; forget it once nothing is in flight."""
        with self._changed:
            request.total = request.dealt
            if request.done >= request.total and request in self._pending:
                self._pending.remove(request)
            self._changed.notify_all()

    # ------------------------------------------------------------------------------ the render thread

    def _run(self) -> None:
        while True:
            with self._changed:
                chosen = self._next_pass()
                if chosen is None:
                    self._thread = None
                    return
            self._render_pass(chosen)

    def _next_pass(self) -> list[tuple[_Request, int, int]] | None:
        """Wait (holding the lock) until a pass should start; its (request, first, count) pieces.

        None when no request came for :data:`IDLE_EXIT_S` (the thread then ends).
        """
        if not self._changed.wait_for(lambda: self._undealt_requests(), IDLE_EXIT_S):
            return None
        wait_s = self.policy.max_wait_ms / 1000.0
        while True:
            waiting = self._undealt_requests()
            frames = sum(r.undealt for r in waiting)
            everyone_waits = len({id(r.seat) for r in waiting}) >= self._seats
            remaining = waiting[0].arrived + wait_s - time.monotonic()
            if frames >= self.policy.max_frames or everyone_waits or remaining <= 0:
                self.passes_started += 1
                return self._deal(waiting)
            self._changed.wait(remaining)

    def _undealt_requests(self) -> list[_Request]:
        return [r for r in self._pending if r.undealt > 0]

    def _deal(self, waiting: list[_Request]) -> list[tuple[_Request, int, int]]:
        """Deal up to ``max_frames`` frames one at a time to the waiting requests in turn.

        The turn starts with the jobs served least recently (ties: the oldest request), so with more
        waiting jobs than rows the jobs left out of one pass lead the next.
        """
        waiting = sorted(waiting, key=lambda r: (self._last_dealt.get(r.seat.id, -1), r.arrived))
        counts: Counter = Counter()
        room = self.policy.max_frames
        while room:
            dealt_any = False
            for request in waiting:
                if room and request.undealt - counts[id(request)] > 0:
                    counts[id(request)] += 1
                    room -= 1
                    dealt_any = True
            if not dealt_any:
                break
        pieces = []
        for request in waiting:
            count = counts[id(request)]
            if count:
                pieces.append((request, request.dealt, count))
                request.dealt += count
                self._last_dealt[request.seat.id] = self.passes_started
        return pieces

    def _render_pass(self, pieces: list[tuple[_Request, int, int]]) -> None:
        slices = [_sub_slice(request.piece, first, count) for request, first, count in pieces]
        total = sum(count for _, _, count in pieces)
        frames, error = None, None
        try:
            frames = render_slices(self.models, slices, None, self.policy.max_frames)
            self.passes += 1
            self.frames += total
            self.padding += self.policy.max_frames - total
            if self.on_pass is not None:
                record: Counter = Counter()
                for request, _, count in pieces:
                    record[request.seat.id] += count
                self.on_pass(PassRecord(dict(record), self.policy.max_frames - total))
        except BaseException as failure:  # noqa: BLE001 - every job in the pass gets the error, the thread lives on
            log.exception("a shared render pass of %d frames failed", total)
            error = failure
        with self._changed:
            for index, (request, _, count) in enumerate(pieces):
                request.done += count
                if error is not None:
                    request.total = request.dealt = request.done  # nothing more for this request
                    request.parts.put(error)
                else:
                    request.parts.put(frames[index])
                if request.done >= request.total and request in self._pending:
                    self._pending.remove(request)
            self._changed.notify_all()


def _sub_slice(piece: FrameSlice, first: int, count: int) -> FrameSlice:
    """Rows ``first .. first + count`` of ``piece``."""
    poses = None if piece.poses is None else np.asarray(piece.poses)[:, first : first + count]
    return FrameSlice(piece.source, piece.windows[first : first + count], poses, piece.first + first)

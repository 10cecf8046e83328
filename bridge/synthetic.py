"""A deterministic stand-in engine for the sidecar's tests and transport benchmark.

Its motion is a pure function of frame index and seed (so a test can compute the expected stream
in-process), its speed is set by the job, and it records what it was asked to do, so protocol,
cancel, fairness and back-pressure behaviour can be checked without any model or engine timing.

Job options it reads: ``n_frames`` (default 50), ``chunk_frames`` (10), ``seed`` (0), ``delay_s``
(sleep before each chunk, 0), ``fail_at`` (raise at that chunk index), ``reuse_frames`` (send one
pre-made frame buffer every time: measures transport alone), ``hold`` (name of a gate the test opens),
``max_message_bytes`` (split steps into chunk messages of at most this size).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from talkbridge.bridge import protocol as p
from talkbridge.bridge.codec import MAX_STEP_MESSAGE_BYTES, JobSpec, info_message, step_messages
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.steps import JobInfo, Step
from talkbridge.core.motion import MotionChunk

ENGINE_NAME = "synthetic"
ENGINE_VERSION = "1"


def synthetic_chunk(start: int, n_frames: int, seed: int = 0) -> MotionChunk:
    """Frames ``start .. start+n_frames-1`` of the synthetic clip for ``seed``."""
    t = np.arange(start, start + n_frames, dtype=np.float64)[:, None]
    phase = np.arange(6, dtype=np.float64)[None, :] + seed
    pose = (0.1 * np.sin(0.07 * t + phase)).astype(np.float32)
    blink = (0.5 + 0.5 * np.sin(0.3 * t[:, 0] + seed)).astype(np.float32)
    expression = np.cos(0.05 * t + np.arange(64)[None, :] * 0.1 + seed).astype(np.float32)
    return MotionChunk(start=start, pose=pose, blink=blink, expression=expression)


def synthetic_frames(start: int, n_frames: int, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8 frames whose value encodes the frame index."""
    values = (np.arange(start, start + n_frames) % 251).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (n_frames, size, size, 3)).copy()


@dataclass
class SyntheticRunner:
    """A :class:`~talkbridge.bridge.jobs.JobRunner` with no model; see the module docstring."""

    gates: dict[str, threading.Event] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    produced: dict[str, int] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def capabilities(self) -> dict[str, Any]:
        return {"engines": [ENGINE_NAME], "render_sizes": [64, 256, 512], "render_engines": [ENGINE_NAME]}

    def facts(self, job: JobSpec) -> dict[str, Any]:
        """Extra facts for the job's ``info`` metadata, asked once as the job starts (tests add theirs)."""
        return {}

    def run(self, job: JobSpec, device: str, cancel: threading.Event) -> Iterator[p.Message]:
        if job.engine != ENGINE_NAME:
            raise InputError(f"unknown engine {job.engine!r}; this server runs only {ENGINE_NAME!r}")
        options = job.options
        n_total = int(options.get("n_frames", 50))
        step = int(options.get("chunk_frames", 10))
        seed = int(options.get("seed", 0))
        delay = float(options.get("delay_s", 0.0))
        fail_at = options.get("fail_at")
        max_bytes = int(options.get("max_message_bytes", MAX_STEP_MESSAGE_BYTES))
        if n_total < 1 or step < 1:
            raise InputError("n_frames and chunk_frames must be positive")
        with self._lock:
            self.started.append(job.job_id)
            self.produced[job.job_id] = 0
        hold = options.get("hold")
        if hold is not None:
            gate = self.gates.setdefault(str(hold), threading.Event())
            while not gate.wait(0.02):
                if cancel.is_set():
                    break
        reused = None
        if job.render_size and options.get("reuse_frames"):
            reused = synthetic_frames(0, step, job.render_size)
        size = (job.render_size, job.render_size) if job.render_size else None
        facts = {"seed": seed, **self.facts(job)}
        yield info_message(job.job_id, JobInfo(ENGINE_NAME, ENGINE_VERSION, n_total, frame_size=size, metadata=facts))
        try:
            for index, start in enumerate(range(0, n_total, step)):
                if cancel.is_set():
                    with self._lock:
                        self.cancelled.append(job.job_id)
                    return
                if delay:
                    time.sleep(delay)
                if fail_at is not None and index == int(fail_at):
                    raise RuntimeError(f"synthetic failure at chunk {index}")
                n = min(step, n_total - start)
                frames = None
                if job.render_size:
                    frames = reused[:n] if reused is not None else synthetic_frames(start, n, job.render_size)
                with self._lock:
                    self.produced[job.job_id] += 1
                yield from step_messages(job.job_id, Step(synthetic_chunk(start, n, seed), frames), max_bytes)
            with self._lock:
                self.finished.append(job.job_id)
        finally:
            if cancel.is_set() and job.job_id not in self.cancelled:
                with self._lock:
                    self.cancelled.append(job.job_id)

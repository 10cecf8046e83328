"""Sidecars for tests that run real engines: in worker processes, exactly as ``talkbridge serve`` does.

An engine on one of the server's own threads can hold the GIL long enough, on a loaded machine, for
heartbeats to stop and a client to declare the server lost; in a worker process it cannot. Runners
that tests customise are built in the worker from a ``module:callable`` factory here.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

from talkbridge.bridge.jobs import EngineRunner
from talkbridge.bridge.server import Server, ServerConfig
from talkbridge.bridge.workers import ProcessRunner, WorkerSpec


@contextlib.contextmanager
def sidecar(factory: str = "talkbridge.bridge.jobs:EngineRunner", devices: tuple[str, ...] = ("cpu",), **kwargs: Any) -> Iterator[Server]:
    """A loopback server whose jobs run in one worker process per device, built by ``factory(**kwargs)``."""
    runner = ProcessRunner(WorkerSpec(factory, kwargs), devices).start()
    server = Server(runner, ServerConfig(bind="tcp://127.0.0.1:*", devices=devices)).start()
    try:
        yield server
    finally:
        server.stop()  # also stops the worker processes


def tiny_sadtalker_runner(checkpoint_dir: str, seed: int, device: str = "cpu", engine_kwargs: dict | None = None) -> EngineRunner:
    """SadTalker from an official-layout folder with the renderer narrowed to the tiny test networks."""
    import torch

    from tests.render_helpers import tiny_recipe_models

    torch.set_num_threads(1)
    runner = EngineRunner({"sadtalker": {"checkpoint_dir": checkpoint_dir}, **(engine_kwargs or {})})
    runner.cache.sadtalker(device).provide_renderer(256, "crop", tiny_recipe_models(seed=seed))
    return runner


class FailingRunner(EngineRunner):
    """The real lite runner, failing after its first step like a crashed engine."""

    def run(self, job, device, cancel):
        for index, output in enumerate(super().run(job, device, cancel)):
            if index == 1:
                raise RuntimeError("GPU fell off the bus")
            yield output


class RecordingRunner(EngineRunner):
    """Writes the options each job arrived with to ``record`` (JSON lines), for the test to read."""

    def __init__(self, record: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = Path(record)

    def run(self, job, device, cancel):
        with self.record.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(job.options) + "\n")
        yield from super().run(job, device, cancel)

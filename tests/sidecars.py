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
def sidecar(
    factory: str = "talkbridge.bridge.jobs:EngineRunner", devices: tuple[str, ...] = ("cpu",), jobs_per_device: int = 1, **kwargs: Any
) -> Iterator[Server]:
    """A loopback server whose jobs run in one worker process per device, built by ``factory(**kwargs)``;
    each worker runs up to ``jobs_per_device`` jobs at once."""
    runner = ProcessRunner(WorkerSpec(factory, kwargs), devices, jobs_per_worker=jobs_per_device).start()
    config = ServerConfig(bind="tcp://127.0.0.1:*", devices=devices, jobs_per_device=jobs_per_device)
    server = Server(runner, config).start()
    try:
        yield server
    finally:
        server.stop()  # also stops the worker processes


def tiny_sadtalker_runner(
    checkpoint_dir: str,
    seed: int,
    device: str = "cpu",
    engine_kwargs: dict | None = None,
    sadtalker_settings: dict | None = None,
    pass_record: str | None = None,
) -> EngineRunner:
    """SadTalker from an official-layout folder with the renderer narrowed to the tiny test networks.

    ``sadtalker_settings`` adds SadTalker settings (e.g. ``batch_frames``); with cross-job batching on,
    ``pass_record`` names a file that gets one JSON line per shared pass (frames per job, padding).
    """
    import torch

    from tests.render_helpers import tiny_recipe_models

    torch.set_num_threads(1)
    runner = EngineRunner({"sadtalker": {"checkpoint_dir": checkpoint_dir, **(sadtalker_settings or {})}, **(engine_kwargs or {})})
    models = runner.cache.sadtalker(device)
    models.provide_renderer(256, "crop", tiny_recipe_models(seed=seed))
    if pass_record is not None:
        record = Path(pass_record)

        def write(entry: Any) -> None:
            with record.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"frames": entry.frames, "padding": entry.padding}) + "\n")

        models.batcher(256, "crop").on_pass = write
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


def record_serve(monkeypatch: Any) -> list:
    """Make ``talkbridge serve`` build its runner and config but start nothing and serve nothing.

    Returns the list that each call's ``(runner, config)`` is appended to (a wiring check).
    """
    from talkbridge.bridge import server as server_module

    built: list = []

    class RecordingServer:
        def __init__(self, runner: Any, config: Any) -> None:
            built.append((runner, config))

        def serve_forever(self, stop: Any = None) -> int:
            return 0  # stopped by no signal

    monkeypatch.setattr(server_module, "Server", RecordingServer)
    monkeypatch.setattr(ProcessRunner, "start", lambda self: self)  # no engine processes
    return built

"""The Ray actors that run jobs: each one owns a device and keeps its loaded engines between jobs.

* :class:`RowActor` runs job-layer requests (``talkbridge batch --ray``): it keeps one
  :class:`~talkbridge.core.jobs.cache.EngineCache`, so weights load once per actor, and streams the
  job back as a Ray streaming generator: the job's :class:`JobInfo`, its :class:`Step` s, then the
  final :class:`JobInfo`. The driver writes the files with the one writer.
* :class:`GatewayActor` runs sidecar jobs (``talkbridge serve --ray``) on the runner a
  :class:`~talkbridge.bridge.workers.WorkerSpec` builds (the same one ``serve`` runs locally) and
  streams its :class:`JobOutput` s back.

Input files travel as bytes (a worker node does not see the driver's disk) and are written into a
per-job temporary folder on the actor's node. Arrays cross as numpy arrays in Ray's object store.
Both generators are deterministic for a given request (engines are seeded), which is what lets Ray
re-run a job whose node died and skip the steps the driver already has.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from talkbridge.core.jobs.request import JobRequest

log = logging.getLogger(__name__)

InputFiles = dict[str, tuple[str, bytes]]
"""role -> (file name, contents) of a request's file inputs."""


def pack_request(request: JobRequest) -> tuple[JobRequest, InputFiles]:
    """The request with its file inputs read into memory, for a node that cannot see this disk."""
    files: InputFiles = {}
    for role, path in request.input_files().items():
        files[role] = (Path(path).name, Path(path).read_bytes())
    return request, files


def unpack_request(request: JobRequest, files: InputFiles, folder: Path) -> JobRequest:
    """``request`` with each file input written into ``folder`` (keeping its file name's suffix)."""
    changes: dict[str, Path] = {}
    for role, (name, data) in files.items():
        path = folder / f"{role}{Path(name).suffix.lower()[:8]}"
        path.write_bytes(data)
        changes[role] = path
    return dataclasses.replace(request, **changes)


def _run_setup(setup: str | None, target: Any) -> None:
    """Call ``"module:function"`` with ``target`` (how a deployment or a test customises actors)."""
    if not setup:
        return
    import importlib

    module, _, name = setup.partition(":")
    getattr(importlib.import_module(module), name)(target)


def _node_facts() -> dict[str, Any]:
    import ray

    context = ray.get_runtime_context()
    gpus = ray.get_gpu_ids()
    return {"node_id": context.get_node_id(), "pid": os.getpid(), "gpus": [str(g) for g in gpus],
            "device": "cuda" if gpus else "cpu"}


def _recording_cache(checkpoints: str | None) -> Any:
    """An EngineCache that also lists what it built, in order (an actor reports it: each engine and
    network should appear once however many jobs ran)."""
    from talkbridge.core.jobs.cache import EngineCache

    class RecordingCache(EngineCache):
        def __init__(self, folder: str | None) -> None:
            super().__init__(folder)
            self.built: list[str] = []

        def _once(self, key: tuple, build: Any) -> Any:
            def recorded() -> Any:
                self.built.append(" ".join(str(part) for part in key))
                return build()

            return super()._once(key, recorded)

    return RecordingCache(checkpoints)


class RowActor:
    """Runs batch rows through the job layer; one :class:`EngineCache` for the actor's lifetime."""

    def __init__(self, checkpoints: str | None = None, setup: str | None = None) -> None:
        self.cache = _recording_cache(checkpoints)
        self.jobs = 0
        _run_setup(setup, self.cache)

    def facts(self) -> dict[str, Any]:
        """Where this actor runs, how many jobs it ran and what its cache built (once each)."""
        return {**_node_facts(), "jobs": self.jobs, "built": list(self.cache.built)}

    def run(self, request: JobRequest, files: InputFiles, render: bool = True) -> Iterator[Any]:
        """Stream the job: its JobInfo, each Step, then the final JobInfo."""
        from talkbridge.core.jobs.local import open_local_job

        self.jobs += 1
        with tempfile.TemporaryDirectory(prefix="talkbridge-ray-job-") as folder:
            stream = open_local_job(unpack_request(request, files, Path(folder)), self.cache, render)
            finished = False
            try:
                yield stream.info
                for step in stream.steps:
                    yield step
                finished = True
                yield stream.info
            finally:
                if not finished:
                    stream.cancel()


class GatewayActor:
    """Runs sidecar jobs on the runner of a WorkerSpec (JSON), for ``talkbridge serve --ray``."""

    def __init__(self, spec_json: str, setup: str | None = None) -> None:
        from talkbridge.bridge.worker_main import build_runner
        from talkbridge.bridge.workers import WorkerSpec

        self.device = _node_facts()["device"]
        self.runner = build_runner(WorkerSpec.from_json(spec_json), self.device)
        self.jobs = 0
        _run_setup(setup, self.runner)

    def facts(self) -> dict[str, Any]:
        return {**_node_facts(), "jobs": self.jobs}

    def capabilities(self) -> dict[str, Any]:
        return dict(self.runner.capabilities())

    def run(self, job: Any) -> Iterator[Any]:
        """Stream the job's JobOutputs; Ray's cancel (or the driver going away) ends it at a yield."""
        self.jobs += 1
        cancel = threading.Event()
        outputs = self.runner.run(job, self.device, cancel)
        try:
            for output in outputs:  # not `yield from`: Ray drives the generator with send(), which a plain iterator lacks
                yield output
        finally:
            cancel.set()
            close = getattr(outputs, "close", None)
            if close is not None:
                close()

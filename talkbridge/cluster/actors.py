"""The Ray actors that run jobs: each one owns a device and keeps its loaded engines between jobs.

* :class:`RowActor` runs job-layer requests (``talkbridge batch --ray``): it keeps one
  :class:`~talkbridge.core.jobs.cache.EngineCache`, so weights load once per actor, and streams the
  job back as a Ray streaming generator: the job's :class:`JobInfo` once, then its :class:`Step` s.
  The driver writes the files with the one writer.
* :class:`GatewayActor` runs sidecar jobs (``talkbridge serve --ray``) on the runner a
  :class:`~talkbridge.bridge.workers.WorkerSpec` builds (the same one ``serve`` runs locally) and
  streams the same stream back in its wire form (:mod:`talkbridge.bridge.codec` messages), which
  the gateway relays to the client as it is.

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

from talkbridge.bridge.leftovers import owned_folder_prefix, sweep_stale_job_folders
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


def _run_setup(setup: str | None, target: Any) -> Any:
    """Call ``"module:function"`` with ``target`` (how a deployment or a test customises actors).

    What the function returns, when callable, is asked again by :meth:`RowActor.facts` for facts of
    its own (a deployment's health figures; the tests count what the actor built).
    """
    if not setup:
        return None
    import importlib

    module, _, name = setup.partition(":")
    return getattr(importlib.import_module(module), name)(target)


def _node_facts() -> dict[str, Any]:
    import ray

    context = ray.get_runtime_context()
    gpus = ray.get_gpu_ids()
    return {"node_id": context.get_node_id(), "pid": os.getpid(), "gpus": [str(g) for g in gpus],
            "device": "cuda" if gpus else "cpu"}


class RowActor:
    """Runs batch rows through the job layer; one :class:`EngineCache` for the actor's lifetime."""

    def __init__(self, checkpoints: str | None = None, setup: str | None = None,
                 engine_options: dict[str, dict[str, Any]] | None = None) -> None:
        """``engine_options`` reach the actor's cache as they are (the driver's environment does not
        reach a worker node, so ``--force-cpu-diffusion`` travels as an argument, not an env var)."""
        from talkbridge.core.jobs.cache import EngineCache

        sweep_stale_job_folders()  # the uploaded inputs of actors killed on this node
        self.cache = EngineCache(checkpoints, engine_options)
        self.jobs = 0
        self._setup_facts = _run_setup(setup, self.cache)

    def facts(self) -> dict[str, Any]:
        """Where this actor runs, how many jobs it ran, and what its set-up reports (if anything)."""
        facts = {**_node_facts(), "jobs": self.jobs}
        if callable(self._setup_facts):
            facts["setup"] = self._setup_facts()
        return facts

    def run(self, request: JobRequest, files: InputFiles, render: bool = True) -> Iterator[Any]:
        """Stream the job: its JobInfo once, then each Step."""
        from talkbridge.core.jobs.local import open_local_job

        self.jobs += 1
        with tempfile.TemporaryDirectory(prefix=owned_folder_prefix("talkbridge-ray-job-")) as folder:
            stream = open_local_job(unpack_request(request, files, Path(folder)), self.cache, render)
            try:
                yield stream.info
                for step in stream.steps:
                    yield step
            finally:
                stream.close()


class GatewayActor:
    """Runs sidecar jobs on the runner of a WorkerSpec (JSON), for ``talkbridge serve --ray``."""

    def __init__(self, spec_json: str, setup: str | None = None) -> None:
        from talkbridge.bridge.worker_main import build_runner
        from talkbridge.bridge.workers import WorkerSpec

        sweep_stale_job_folders()  # the uploaded inputs of actors killed on this node
        self.device = _node_facts()["device"]
        self.runner = build_runner(WorkerSpec.from_json(spec_json), self.device)
        self.jobs = 0
        _run_setup(setup, self.runner)

    def facts(self) -> dict[str, Any]:
        return {**_node_facts(), "jobs": self.jobs}

    def capabilities(self) -> dict[str, Any]:
        return dict(self.runner.capabilities())

    def run(self, job: Any) -> Iterator[Any]:
        """Stream the job's wire messages; Ray's cancel (or the driver going away) ends it at a yield."""
        self.jobs += 1
        cancel = threading.Event()
        messages = self.runner.run(job, self.device, cancel)
        try:
            for message in messages:  # not `yield from`: Ray drives the generator with send(), which a plain iterator lacks
                yield message
        finally:
            cancel.set()
            close = getattr(messages, "close", None)
            if close is not None:
                close()

"""Where batch rows run: in this process (the default) or on one or more sidecars.

Both call :func:`talkbridge.api.run_job`, exactly as ``talkbridge generate`` does, so a row's files
are those ``generate`` would write. The Ray backend lives in :mod:`talkbridge.cluster.batch_backend`.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from talkbridge.batch.manifest import BatchRow
from talkbridge.batch.runner import INTERRUPTED_REASON, RowInterrupted, RowResult
from talkbridge.core.errors import InputError, JobInterrupted
from talkbridge.exporters.job_files import OutputPlan

log = logging.getLogger(__name__)


class InProcessBackend:
    """Rows one after another in this process; one engine cache, so weights load once per batch."""

    name = "in-process"
    slots = 1
    inline = True

    def __init__(self, checkpoints: Path | None = None, engine_options: dict[str, dict[str, Any]] | None = None) -> None:
        """``engine_options``: the cache's engine name -> constructor keywords (``--force-cpu-diffusion``)."""
        from talkbridge.core.jobs.cache import EngineCache

        self.cache = EngineCache(checkpoints, engine_options)

    def run_row(self, row: BatchRow, plan: OutputPlan, stop: threading.Event) -> RowResult:
        from talkbridge.api import run_job

        assert row.request is not None
        result = run_job(row.request, plan, cache=self.cache)
        return RowResult(result.files, result.engine)

    def close(self) -> None:
        pass


def sidecar_slots(target: Any) -> int:
    """How many rows a sidecar takes at once: its job places (devices x jobs per device, so a GPU
    sidecar gets enough rows to batch their frames) not already taken by queued jobs (at least 1)."""
    client = target.client()
    try:
        capabilities = client.connect(timeout=10.0)["capabilities"]
    except Exception as error:
        raise InputError(f"cannot reach the sidecar at {target.address}: {error}") from None
    finally:
        client.close()
    devices = len(capabilities.get("devices", [])) or 1
    per_device = capabilities.get("jobs_per_device", 1)  # absent from servers before concurrent jobs
    per_device = per_device if isinstance(per_device, int) and not isinstance(per_device, bool) and 0 < per_device <= 1024 else 1
    return max(1, devices * per_device - int(capabilities.get("queued_jobs", 0)))


class SidecarBackend:
    """Rows spread over sidecars by free capacity: each sidecar has a slot per free device, and a
    row takes whichever slot frees first, so a faster or larger sidecar takes more rows."""

    inline = False

    def __init__(self, targets: list[Any]) -> None:
        if not targets:
            raise InputError("--sidecar needs at least one address")
        self._free: queue.Queue = queue.Queue()
        for target in targets:
            slots = sidecar_slots(target)
            log.info("sidecar %s: %d slots", target.address, slots)
            for _ in range(slots):
                self._free.put(target)
        self.slots = self._free.qsize()
        self.name = "sidecar " + " ".join(target.address for target in targets)

    def run_row(self, row: BatchRow, plan: OutputPlan, stop: threading.Event) -> RowResult:
        from talkbridge.api import run_job

        assert row.request is not None
        target = self._free.get()
        try:
            if stop.is_set():
                raise RowInterrupted("interrupted before this row started")
            result = run_job(row.request, plan, sidecar=target, stop=stop)
            return RowResult(result.files, result.engine, {"sidecar": target.address})
        except JobInterrupted:
            raise RowInterrupted(INTERRUPTED_REASON) from None
        finally:
            self._free.put(target)

    def close(self) -> None:
        pass

"""Run a batch: skip complete rows, run the rest on a backend, record each, report all.

The driver is the same for every backend (in this process, sidecars, a Ray cluster): it decides
what to run from the ledger, keeps as many rows in flight as the backend has slots, writes each
finished row's ledger record and the report, and shows a progress bar over rows with an ETA. Each
row's files are written by the job layer's one writer, atomically; a row that fails (bad input, a
crashed engine) is reported and the batch goes on. Ctrl-C or SIGTERM cancels only the rows in
flight: their partial files are removed, finished rows keep their records, and the report says so.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from talkbridge.batch.ledger import (
    complete_outputs, fingerprint, ledger_path, mark_started, read_ledger, row_inputs, write_ledger,
)
from talkbridge.batch.manifest import BatchRow
from talkbridge.batch.report import BatchReport, RowOutcome, files_by_kind
from talkbridge.core.errors import InputError, JobInterrupted, TalkbridgeError
from talkbridge.core.jobs.steps import JobStream, Step
from talkbridge.exporters.job_files import OutputPlan
from talkbridge.interrupts import sigterm_as_interrupt

log = logging.getLogger(__name__)

INTERRUPTED_REASON = "interrupted before this row finished; run the batch again to make it"


class RowInterrupted(JobInterrupted):
    """Raised inside a row's step stream when the batch is stopping (the writer then cleans up)."""


@dataclass
class RowResult:
    """What a backend reports for a finished row."""

    files: dict[str, Path]
    engine: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class RowBackend(Protocol):
    """Where rows run. ``slots`` rows may be in flight at once; ``inline`` runs them on the calling
    thread (one at a time), so Ctrl-C reaches the writer directly."""

    name: str
    slots: int
    inline: bool

    def run_row(self, row: BatchRow, plan: OutputPlan, stop: threading.Event) -> RowResult:
        """Run the row's job and write its files with ``plan``; raise on failure.

        Backends that run rows off the calling thread wrap their stream with :func:`stop_aware` so a
        stopping batch cancels them between steps.
        """
        ...

    def close(self) -> None:
        ...


def stop_aware(stream: JobStream, stop: threading.Event) -> JobStream:
    """``stream`` (the same object, since its source may refine ``info``) with steps that raise
    :class:`RowInterrupted` once ``stop`` is set (checked per step)."""
    inner = stream.steps

    def steps() -> Iterator[Step]:
        for step in inner:
            if stop.is_set():
                raise RowInterrupted(INTERRUPTED_REASON)
            yield step
        if stop.is_set():
            raise RowInterrupted(INTERRUPTED_REASON)

    stream.steps = steps()
    return stream


def describe_failure(error: BaseException) -> str:
    """One line for the report: input problems as they are, anything else with its type."""
    if isinstance(error, (TalkbridgeError, JobInterrupted)):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass
class _Pending:
    row: BatchRow
    inputs: dict[str, Any]
    had_record: bool


class BatchRun:
    """One run of a batch over ``rows`` into ``output_dir`` on ``backend``."""

    def __init__(self, rows: list[BatchRow], output_dir: Path, backend: RowBackend, *, overwrite: bool = False,
                 progress: bool = True, manifest: str = "") -> None:
        self.rows = rows
        self.output_dir = Path(output_dir)
        self.backend = backend
        self.overwrite = overwrite
        self.progress = progress
        self.manifest = manifest
        self.stop = threading.Event()
        self._outcomes: dict[str, RowOutcome] = {}
        self._planned: dict[str, _Pending] = {}  # rows sent to the backend, for the report's ledger check
        self._bar: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ planning

    def _plan(self) -> list[_Pending]:
        """Rows that must run; the others are recorded as skipped or failed right away."""
        todo = []
        for row in self.rows:
            if row.error is not None:
                self._outcomes[row.name] = RowOutcome(row.name, "failed", row.error, where=row.where)
                continue
            try:
                inputs = row_inputs(row)
            except OSError as error:
                reason = f"{row.where}: cannot read an input ({error.strerror or error}: {error.filename})"
                self._outcomes[row.name] = RowOutcome(row.name, "failed", reason, where=row.where)
                continue
            record, complete = self._recorded(row.name, inputs)
            if complete is not None:
                self._outcomes[row.name] = RowOutcome(
                    row.name, "skipped", "complete and unchanged since an earlier run", files_by_kind(complete),
                    where=row.where, engine=str(record.get("engine", "")) if record else "",
                )
                continue
            if record is not None:
                log.info("%s changed since its outputs were made (or they were altered): making it again", row.name)
            todo.append(_Pending(row, inputs, record is not None))
            self._planned[row.name] = todo[-1]
        return todo

    # ------------------------------------------------------------------------------ one row

    def _run_row(self, pending: _Pending) -> RowOutcome:
        row = pending.row
        started = time.monotonic()
        try:
            if self.stop.is_set():
                raise RowInterrupted(INTERRUPTED_REASON)
            plan = OutputPlan(
                self.output_dir, row.name, overwrite=self.overwrite or pending.had_record,
                video=True, exports=row.exports, head=row.head, mouth=row.mouth,
            )
            plan.prepare(None)  # files this batch did not make stay untouched (unless --overwrite)
            mark_started(self.output_dir, row.name)
            try:
                result = self.backend.run_row(row, plan, self.stop)
            except BaseException:
                self._forget_if_nothing_written(plan)
                raise
            seconds = time.monotonic() - started
            write_ledger(self.output_dir, row, pending.inputs, result.files,
                         {"engine": result.engine, "seconds": round(seconds, 3), "backend": self.backend.name, **result.details})
            return RowOutcome(row.name, "done", "", files_by_kind(result.files), seconds, row.where, result.engine)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # one bad row must not stop the batch
            reason = describe_failure(error)
            if not reason.startswith(row.where):
                reason = f"{row.where}: {reason}"
            if not isinstance(error, (TalkbridgeError, JobInterrupted)):
                log.debug("row %s failed", row.name, exc_info=True)
            if not isinstance(error, JobInterrupted):
                log.error("%s failed: %s", row.name, reason)
            return RowOutcome(row.name, "failed", reason, seconds=time.monotonic() - started, where=row.where)

    def _forget_if_nothing_written(self, plan: OutputPlan) -> None:
        """A failed row that left none of its files needs no record; one that left some keeps its
        incomplete record, so the rerun may replace them."""
        targets = plan.targets("sadtalker")  # every kind an engine may write
        if not any(path.exists() for path in targets.values()):
            ledger_path(self.output_dir, plan.name).unlink(missing_ok=True)

    def _finish(self, outcome: RowOutcome) -> None:
        with self._lock:
            self._outcomes[outcome.name] = outcome
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix_str(self._postfix(), refresh=False)

    def _postfix(self) -> str:
        counts = {status: 0 for status in ("done", "skipped", "failed")}
        for outcome in self._outcomes.values():
            counts[outcome.status] += 1
        return ", ".join(f"{k} {v}" for k, v in counts.items() if v)

    # ------------------------------------------------------------------------------ the run

    def run(self) -> BatchReport:
        """Run every row; the report is written even when interrupted (then KeyboardInterrupt is re-raised)."""
        from tqdm import tqdm

        started = time.monotonic()
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot create the output folder ({error.strerror or error})", self.output_dir) from None
        interrupted: KeyboardInterrupt | None = None  # Ctrl-C, or SIGTERM's Terminated: the CLI's exit code tells them apart
        with sigterm_as_interrupt():
            try:
                todo = self._plan()
                log.info("%d rows: %d to make, %d already complete or failed up front (backend: %s)",
                         len(self.rows), len(todo), len(self.rows) - len(todo), self.backend.name)
                self._bar = tqdm(total=len(self.rows), initial=len(self.rows) - len(todo), unit="row",
                                 desc="batch", disable=not self.progress, dynamic_ncols=True)
                if self.backend.inline:
                    for pending in todo:
                        self._finish(self._run_row(pending))
                else:
                    self._run_concurrently(todo)
            except KeyboardInterrupt as error:
                interrupted = error
                self.stop.set()
            finally:
                if self._bar is not None:
                    self._bar.close()
        report = self._report(time.monotonic() - started, interrupted is not None)
        path = report.write(self.output_dir)
        log.info("report: %s (%s)", path, ", ".join(f"{k} {v}" for k, v in report.counts.items()))
        if interrupted is not None:
            raise interrupted
        return report

    def _run_concurrently(self, todo: list[_Pending]) -> None:
        queue = list(reversed(todo))
        running: dict[Future, _Pending] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.backend.slots), thread_name_prefix="batch-row") as pool:
            try:
                while queue or running:
                    while queue and len(running) < max(1, self.backend.slots):
                        pending = queue.pop()
                        running[pool.submit(self._run_row, pending)] = pending
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)  # a timeout keeps Ctrl-C responsive
                    for future in done:
                        running.pop(future)
                        self._finish(future.result())
            except KeyboardInterrupt:
                self.stop.set()  # in-flight rows stop at their next step; their partial files are removed
                for future in running:
                    outcome = future.result()
                    with self._lock:
                        self._outcomes[outcome.name] = outcome
                raise

    def _report(self, seconds: float, interrupted: bool) -> BatchReport:
        rows = []
        for row in self.rows:
            outcome = self._outcomes.get(row.name)
            if outcome is None:
                outcome = self._recorded_outcome(row) or RowOutcome(row.name, "failed", INTERRUPTED_REASON, where=row.where)
            rows.append(outcome)
        return BatchReport(rows, backend=self.backend.name, manifest=self.manifest, seconds=seconds, interrupted=interrupted)

    def _recorded(self, name: str, inputs: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Path] | None]:
        """The row's ledger record, and its outputs when that record is complete for ``inputs`` (else None)."""
        record = read_ledger(self.output_dir, name)
        return record, complete_outputs(record, self.output_dir, fingerprint(inputs))

    def _recorded_outcome(self, row: BatchRow) -> RowOutcome | None:
        """A row the interrupt caught between its complete ledger record and its outcome (the signal
        landed in that window): the record on disk is the truth, so the report says done, as a rerun would."""
        pending = self._planned.get(row.name)
        if pending is None:
            return None
        record, complete = self._recorded(row.name, pending.inputs)
        if complete is None or record is None:
            return None
        return RowOutcome(row.name, "done", "", files_by_kind(complete), float(record.get("seconds") or 0.0),
                          row.where, str(record.get("engine", "")))


def run_batch(rows: list[BatchRow], output_dir: Path, backend: RowBackend, *, overwrite: bool = False,
              progress: bool = True, manifest: str = "") -> BatchReport:
    """Run ``rows`` into ``output_dir`` on ``backend`` (closed afterwards); see :class:`BatchRun`."""
    try:
        return BatchRun(rows, output_dir, backend, overwrite=overwrite, progress=progress, manifest=manifest).run()
    finally:
        backend.close()

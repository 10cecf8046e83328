"""``OUTDIR/batch_report.json``: one entry per manifest row, whatever happened to it.

Each row has ``name``, ``status`` (``done``: made now, ``skipped``: complete and unchanged from an
earlier run, ``failed``), ``reason`` (why it failed or was skipped), ``files`` (output kind -> file
name in OUTDIR) and ``seconds`` (wall time spent on it in this run).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from talkbridge.exporters.atomic import atomic_output

REPORT_NAME = "batch_report.json"
FORMAT = "talkbridge.batch_report"
VERSION = 1
STATUSES = ("done", "skipped", "failed")


@dataclass
class RowOutcome:
    name: str
    status: str
    reason: str = ""
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    where: str = ""
    engine: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"row status {self.status!r} is not one of {STATUSES}")


def files_by_kind(files: dict[str, Path]) -> dict[str, str]:
    """Output kind -> file name (relative to OUTDIR, so a moved folder's report stays true)."""
    return {kind: Path(path).name for kind, path in sorted(files.items())}


@dataclass
class BatchReport:
    """The outcome of every row, in manifest order, plus totals."""

    rows: list[RowOutcome]
    backend: str
    manifest: str
    seconds: float
    interrupted: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return {status: sum(1 for row in self.rows if row.status == status) for status in STATUSES}

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "manifest": self.manifest,
            "backend": self.backend,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "counts": self.counts,
            "rows": [{**asdict(row), "seconds": round(row.seconds, 3)} for row in self.rows],
        }

    def write(self, output_dir: Path) -> Path:
        """Write (atomically, replacing the previous run's) ``OUTDIR/batch_report.json``."""
        path = Path(output_dir) / REPORT_NAME
        with atomic_output(path, overwrite=True) as temp:
            temp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

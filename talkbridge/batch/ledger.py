"""The resumable part of a batch: what each finished row was made from, recorded beside its outputs.

After a row's outputs are all written, ``OUTDIR/<name>.batch.json`` records the row's fingerprint (a
hash of its input files' contents, its options, its exports and the code version) and the size and
hash of every output file; it is written atomically, last (before the row starts, a record marked incomplete says the row's files are
this batch's to replace). A rerun skips a row only when that record
exists, its fingerprint equals the row's current one and every output is still there unchanged; it
redoes rows whose inputs or options changed. An interrupted row has no record (or an old one whose
outputs or fingerprint no longer match), so it runs again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from talkbridge._version import __version__
from talkbridge.batch.manifest import BatchRow
from talkbridge.core.emotion import EmotionTrack, emotion_to_wire
from talkbridge.exporters.atomic import atomic_output

log = logging.getLogger(__name__)

FORMAT = "talkbridge.batch_row"
VERSION = 1
LEDGER_SUFFIX = ".batch.json"
_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's contents, read in blocks (audio and video files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, EmotionTrack):
        return emotion_to_wire(value)  # its keys: a changed emotion changes the row's fingerprint
    if isinstance(value, np.ndarray):
        return np.asarray(value, np.float64).round(6).tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def row_inputs(row: BatchRow) -> dict[str, Any]:
    """What a row's outputs depend on, JSON-able: input file hashes, options, exports, code version."""
    assert row.request is not None
    files = dict(row.request.input_files())
    if row.head is not None and "glb" in row.exports:
        files["head"] = row.head
    options = row.request.options
    inputs = {
        "files": {role: {"path": str(path), "sha256": file_sha256(path)} for role, path in sorted(files.items())},
        "options": {f.name: _jsonable(getattr(options, f.name)) for f in fields(options) if f.name != "device"},
        "exports": list(row.exports),
        "code_version": __version__,
    }
    if row.mouth is not None and "glb" in row.exports:
        inputs["mouth"] = row.mouth  # only when chosen, so rows made before the choice existed keep their records
    return inputs


def fingerprint(inputs: dict[str, Any]) -> str:
    """One hash of :func:`row_inputs`; file paths are left out, so moving a project keeps its outputs."""
    content = {**inputs, "files": {role: entry["sha256"] for role, entry in inputs["files"].items()}}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def ledger_path(output_dir: Path, name: str) -> Path:
    return Path(output_dir) / f"{name}{LEDGER_SUFFIX}"


def read_ledger(output_dir: Path, name: str) -> dict[str, Any] | None:
    """The row's record, or None when there is none or it is unreadable (then the row runs again)."""
    path = ledger_path(output_dir, name)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("ignoring the unreadable batch record %s (%s); the row runs again", path, error)
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        log.warning("ignoring %s: not a talkbridge batch record", path)
        return None
    return record


def complete_outputs(record: dict[str, Any] | None, output_dir: Path, current: str) -> dict[str, Path] | None:
    """The row's outputs when ``record`` says they were made from fingerprint ``current`` and each file
    is still there with the recorded size and hash; otherwise None (the row must run)."""
    if record is None or record.get("complete") is not True or record.get("fingerprint") != current:
        return None
    outputs: dict[str, Path] = {}
    for kind, entry in (record.get("outputs") or {}).items():
        path = Path(output_dir) / str(entry.get("file", ""))
        try:
            if path.stat().st_size != entry.get("size") or file_sha256(path) != entry.get("sha256"):
                return None
        except OSError:
            return None
        outputs[kind] = path
    return outputs or None


def write_ledger(output_dir: Path, row: BatchRow, inputs: dict[str, Any], outputs: dict[str, Path], details: dict[str, Any]) -> Path:
    """Record a finished row (atomically, after its outputs): the proof a rerun trusts."""
    record = {
        "format": FORMAT,
        "version": VERSION,
        "name": row.name,
        "complete": True,
        "fingerprint": fingerprint(inputs),
        "inputs": inputs,
        "outputs": {
            kind: {"file": path.name, "size": path.stat().st_size, "sha256": file_sha256(path)}
            for kind, path in sorted(outputs.items())
        },
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **details,
    }
    path = ledger_path(output_dir, row.name)
    with atomic_output(path, overwrite=True) as temp:
        temp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


def mark_started(output_dir: Path, name: str) -> Path:
    """Record that this batch is making the row (not complete), before any of its files exist.

    A run interrupted or failed part-way (say, video written, an export refused) leaves this record, so
    the rerun knows the row's files are this batch's own and replaces them; a complete record never
    stays behind a half-redone row.
    """
    record = {"format": FORMAT, "version": VERSION, "name": name, "complete": False,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = ledger_path(output_dir, name)
    with atomic_output(path, overwrite=True) as temp:
        temp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path

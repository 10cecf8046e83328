"""Batch manifests: which clips to make, one row each, read from CSV, JSON Lines or a folder of audio.

Columns (CSV header or JSON keys): ``audio`` (required), ``portrait``, ``name`` (default: the audio's
stem), the file inputs ``transcript``, ``landmarks``, ``ref_eyeblink``, ``ref_pose``, the exports
``head`` (a glTF head to animate), ``exports`` (``glb,livelink,curves,preview``) and ``mouth`` (which
of the head's mouth sets drives the glb and preview exports' mouth: ``arkit``, ``visemes``, ``vrm`` or
``auto``), and any job option under
its long name with ``_`` or ``-`` (``seed``, ``pose-style``, ``expression_scale``, ``still``, ...).
Option cells are parsed and checked by the job layer's one definition (:data:`OPTIONS`), so the
limits are those of ``generate``. Paths resolve relative to the manifest's folder. A ``transcript``
cell that names no file and does not look like a path is the spoken text itself.

Problems that concern the whole manifest (unreadable file, no ``audio`` column, a misspelt column,
duplicate names) raise :class:`InputError` before any work. Problems of one row (a bad option value,
a missing file) are recorded on that row, which then fails alone while the others run.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from talkbridge.core.errors import InputError, TalkbridgeError
from talkbridge.core.jobs.options import OPTIONS, JobOptions, option_name
from talkbridge.core.jobs.request import JobRequest, read_transcript
from talkbridge.exporters.job_exports import NEEDS_HEAD, parse_export_kinds
from talkbridge.exporters.job_files import output_name_problem
from talkbridge.exporters.mouth_source import parse_mouth_source

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".wma", ".aiff", ".aif")
FILE_COLUMNS = ("audio", "portrait", "transcript", "landmarks", "ref_eyeblink", "ref_pose", "head")
OTHER_COLUMNS = ("name", "exports", "mouth")
# Options that are files on the command line (generate --transcript FILE, --landmarks FILE) are file
# columns here too; `device` is the backend's choice, not a row's.
ROW_OPTIONS = tuple(name for name in OPTIONS if name not in ("transcript", "landmarks", "device"))
_ALIASES = {"image": "portrait", "audio_file": "audio", "audio_path": "audio", "image_file": "portrait",
            "image_path": "portrait", "portrait_file": "portrait", "portrait_path": "portrait"}
"""Column names other tools write for the same thing."""


@dataclass(frozen=True)
class BatchRow:
    """One clip of a batch: its name, the job to run and its exports, or why it cannot run.

    ``where`` names the source (``lines.csv:4``) for messages. A row with an ``error`` has no
    ``request``; it is reported as failed without running.
    """

    name: str
    where: str
    request: JobRequest | None = None
    exports: tuple[str, ...] = ()
    head: Path | None = None
    mouth: str | None = None
    error: str | None = None

    @property
    def audio(self) -> Path | None:
        if self.request is None or not isinstance(self.request.audio, Path):
            return None
        return self.request.audio


@dataclass
class ManifestDefaults:
    """Values every row gets unless it sets its own: a portrait, a head, exports, a mouth set, options (typed values or cell text)."""

    portrait: Path | None = None
    head: Path | None = None
    exports: str = ""
    mouth: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def check_name(name: str, where: str) -> str:
    """``name`` (surrounding spaces dropped) if it is usable as an output base name
    (:func:`~talkbridge.exporters.job_files.output_name_problem`)."""
    name = name.strip(" ")
    problem = output_name_problem(name)
    if problem is not None:
        raise InputError(f"{where}: the name {name!r} is not a plain file name: it {problem}")
    return name


def _cell_text(value: Any) -> str:
    """A JSON value as the text a CSV cell would hold (lists as space-separated items)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(_cell_text(v) for v in value)
    return "" if value is None else str(value)


def _inline_transcript(text: str, base: Path) -> bool:
    """A ``transcript`` cell is a file when it names one (or looks like a path), else the words themselves."""
    text = text.strip()
    if not text or _resolve(base, text).is_file():
        return False
    looks_like_path = Path(text).suffix.lower() in (".txt", ".text", ".md", ".srt", ".lab") or "/" in text or "\\" in text
    return not looks_like_path


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def build_row(cells: Mapping[str, Any], base: Path, where: str, defaults: ManifestDefaults) -> BatchRow:
    """One row from its non-empty cells (canonical column names; text, or typed JSON option values);
    never raises for the row's own problems."""
    audio_text = cells.get("audio", "").strip()
    default = Path(audio_text).stem if audio_text else where.replace(":", "_line_")
    try:
        name = check_name(cells.get("name") or default, where)
    except InputError as error:
        # The row fails alone under its place in the manifest, which no valid name can equal (it
        # holds a ':' or '/'), so it never collides with another row's name.
        return BatchRow(name=where, where=where, error=str(error))
    try:
        if not audio_text:
            raise InputError(f"{where}: the 'audio' cell is empty")
        inline_transcript = _inline_transcript(cells.get("transcript", ""), base)
        files = {column: _resolve(base, cells[column]) for column in FILE_COLUMNS
                 if cells.get(column, "").strip() and not (column == "transcript" and inline_transcript)}
        for column, path in files.items():
            if not path.is_file():
                raise InputError(f"{where}: {column} file not found: {path}")
        option_cells = {**defaults.options, **{k: v for k, v in cells.items() if k in ROW_OPTIONS}}
        if inline_transcript:
            option_cells["transcript"] = cells["transcript"]
        options = JobOptions.from_mapping(option_cells, parse_text=True)
        transcript_file = files.get("transcript")
        landmarks_file = files.get("landmarks")
        if transcript_file is not None:
            options = replace(options, transcript=OPTIONS["transcript"].check(read_transcript(transcript_file)))
        if landmarks_file is not None:
            from talkbridge.core.face.landmarks import load_landmark_file

            options = replace(options, landmarks=load_landmark_file(landmarks_file))
        exports = parse_export_kinds(cells.get("exports") or defaults.exports)
        head = files.get("head", defaults.head)
        mouth = parse_mouth_source(cells.get("mouth") or defaults.mouth)
        on_head = [kind for kind in exports if kind in NEEDS_HEAD]
        if on_head and head is None:
            raise InputError(f"{where}: the {on_head[0]} export needs a 'head' (a .glb or .gltf file to animate)")
        request = JobRequest(
            audio=files["audio"],
            image=files.get("portrait", defaults.portrait),
            options=options,
            ref_eyeblink=files.get("ref_eyeblink"),
            ref_pose=files.get("ref_pose"),
            transcript_file=transcript_file,
            landmarks_file=landmarks_file,
        )
    except TalkbridgeError as error:
        text = str(error)
        return BatchRow(name=name, where=where, error=text if text.startswith(where) else f"{where}: {text}")
    return BatchRow(name=name, where=where, request=request, exports=exports, head=head, mouth=mouth)


def _canonical_columns(columns: Iterable[str], path: Path, warned: set[str]) -> dict[str, str]:
    """Raw column -> canonical name. A column that looks like a misspelt known one is a manifest error
    (the typo would hit every row); other columns (``character``, ``line_id``, ...) are ignored."""
    known = FILE_COLUMNS + OTHER_COLUMNS + ROW_OPTIONS
    mapping: dict[str, str] = {}
    for raw in columns:
        name = option_name(raw)
        name = _ALIASES.get(name, name)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            if close:
                raise InputError(f"unknown column {raw!r}; did you mean {close[0]!r}?", path)
            if name not in warned:
                warned.add(name)
                log.warning("%s: ignoring column %r (not an input, export or job option)", path, raw)
            continue
        if name in mapping.values():
            raise InputError(f"column {name!r} appears twice", path)
        mapping[raw] = name
    if "audio" not in mapping.values():
        raise InputError("the manifest has no 'audio' column", path)
    return mapping


def _csv_cells(text: str, path: Path) -> list[tuple[int, dict[str, str]]]:
    header = text.lstrip().splitlines()[0] if text.strip() else ""
    delimiter = max((",", ";", "\t"), key=header.count) if header else ","  # comma, or a semicolon / tab table
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames:
        raise InputError("the CSV manifest is empty (it needs a header row naming its columns)", path)
    mapping = _canonical_columns([c for c in reader.fieldnames if c is not None], path, set())
    rows = []
    for record in reader:
        if None in record:
            raise InputError(f"line {reader.line_num} has more cells than the header has columns", path)
        cells = {mapping[k]: v.strip() for k, v in record.items() if k in mapping and v is not None and v.strip()}
        if cells:
            rows.append((reader.line_num, cells))
    return rows


def _jsonl_cells(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    warned: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"line {number} is not valid JSON ({error.msg})", path) from None
        if not isinstance(record, dict):
            raise InputError(f"line {number} is not a JSON object", path)
        mapping = _canonical_columns(record, path, warned)
        cells: dict[str, Any] = {}
        for key, value in record.items():
            if key not in mapping:
                continue
            name = mapping[key]
            if name in ROW_OPTIONS and not isinstance(value, str) and value is not None:
                cells[name] = value  # typed JSON values are checked as they are (1.0 is a fine seed)
            elif _cell_text(value).strip():
                cells[name] = _cell_text(value).strip()
        rows.append((number, cells))
    return rows


def read_manifest(path: Path, defaults: ManifestDefaults | None = None) -> list[BatchRow]:
    """The rows of a CSV (with a header) or JSON Lines manifest, or of a folder of audio files."""
    defaults = defaults or ManifestDefaults()
    path = Path(path)
    if path.is_dir():
        rows = folder_rows(path, defaults)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputError("manifest not found", path) from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read the manifest ({error})", path) from None
        jsonl = path.suffix.lower() in (".jsonl", ".ndjson") or text.lstrip().startswith("{")
        records = _jsonl_cells(text, path) if jsonl else _csv_cells(text, path)
        base = path.resolve().parent
        rows = [build_row(cells, base, f"{path.name}:{number}", defaults) for number, cells in records]
    if not rows:
        raise InputError("the manifest lists no rows", path)
    check_unique_names(rows, path)
    return rows


def folder_rows(folder: Path, defaults: ManifestDefaults) -> list[BatchRow]:
    """One row per audio file in ``folder`` (sorted by name), all with the defaults' portrait and options."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in the folder", folder)
    return [build_row({"audio": str(p.resolve())}, folder, f"{folder.name}/{p.name}", defaults) for p in files]


def check_unique_names(rows: list[BatchRow], path: Path) -> None:
    """Two rows writing the same outputs would overwrite each other: refuse before any work."""
    seen: dict[str, str] = {}
    for row in rows:
        key = row.name.lower()  # outputs on case-insensitive file systems collide too
        if key in seen:
            raise InputError(f"rows {seen[key]} and {row.where} both write outputs named {row.name!r}; give each a unique 'name'", path)
        seen[key] = row.where

"""Batch names are plain, printable and short; a bad one fails its own row, with the reason."""

from __future__ import annotations

import pytest

from talkbridge.batch.manifest import read_manifest
from talkbridge.core.errors import InputError
from talkbridge.exporters.job_files import OutputPlan
from tests.speech import speech_like, write_wav


@pytest.fixture
def folder(tmp_path):
    write_wav(tmp_path / "a.wav", speech_like(0.3))
    return tmp_path


def _jsonl(folder, *rows):
    import json

    path = folder / "lines.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("bad,reason", [
    ("../evil", "holds '/'"),
    ("line\nbreak", "control character"),
    ("tab\there", "control character"),
    ("esc\x1b[31m", "control character"),
    ("x" * 300, "300 characters long; the limit is 120"),
    (".hidden", "starts with a dot"),
    ("CON", "Windows device name"),
    ("trailing.", "ends with a dot"),
])
def test_a_bad_name_fails_its_row_alone_and_never_falls_back_to_a_colliding_stem(folder, bad, reason):
    rows = read_manifest(_jsonl(folder, {"audio": "a.wav", "name": bad}, {"audio": "a.wav", "name": "a"}))
    refused, fine = rows
    assert refused.request is None and reason in refused.error and "lines.jsonl:1" in refused.error
    assert refused.name == "lines.jsonl:1"  # never the audio's stem, which row 2 uses
    assert fine.error is None and fine.name == "a"


def test_two_refused_names_are_two_failed_rows(folder):
    rows = read_manifest(_jsonl(folder, {"audio": "a.wav", "name": "../x"}, {"audio": "a.wav", "name": "../y"}, {"audio": "a.wav"}))
    assert [row.error is None for row in rows] == [False, False, True]
    assert len({row.name for row in rows}) == 3


def test_the_batch_runs_the_good_row_and_reports_the_bad_one(folder):
    from talkbridge.batch.backends import InProcessBackend
    from talkbridge.batch.runner import run_batch

    rows = read_manifest(_jsonl(folder, {"audio": "a.wav", "name": "bad\nname", "size": 64}, {"audio": "a.wav", "name": "a", "size": 64}))
    report = run_batch(rows, folder / "out", InProcessBackend(), progress=False)
    assert [(row.name, row.status) for row in report.rows] == [("lines.jsonl:1", "failed"), ("a", "done")]
    assert not [p for p in (folder / "out").iterdir() if "\n" in p.name]


def test_a_name_at_the_limit_is_fine_and_generate_names_are_checked_too(tmp_path):
    OutputPlan(tmp_path, "n" * 120)
    with pytest.raises(InputError, match="the limit is 120"):
        OutputPlan(tmp_path, "n" * 121)
    with pytest.raises(InputError, match="control character"):
        OutputPlan(tmp_path, "two\nlines")

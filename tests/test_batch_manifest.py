"""Batch manifests: CSV and JSON Lines rows, options checked by the job layer, row-local errors, folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbridge.batch.manifest import ManifestDefaults, read_manifest
from talkbridge.core.errors import InputError
from talkbridge.core.jobs.options import OPTIONS


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "audio").mkdir()
    for name in ("one.wav", "two.flac", "three.mp3"):
        (tmp_path / "audio" / name).write_bytes(b"RIFF")
    (tmp_path / "audio" / "notes.txt").write_text("not audio")
    (tmp_path / "face.png").write_bytes(b"png")
    (tmp_path / "head.glb").write_bytes(b"glb")
    (tmp_path / "words.txt").write_text("hello there")
    return tmp_path


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_resolve_paths_and_parse_options_with_either_spelling(folder):
    manifest = write(folder / "lines.csv", (
        "audio,portrait,name,pose-style,expression_scale,still,yaw,exports,head,transcript\n"
        "audio/one.wav,face.png,intro,12,1.5,yes,\"0, 10 -5\",\"glb, livelink\",head.glb,words.txt\n"
        "audio/two.flac,,,,,,,,,\n"
    ))
    first, second = read_manifest(manifest)
    assert first.name == "intro" and first.error is None
    request = first.request
    assert request.audio == folder / "audio/one.wav" and request.image == folder / "face.png"
    options = request.options
    assert (options.pose_style, options.expression_scale, options.still, options.yaw) == (12, 1.5, True, (0.0, 10.0, -5.0))
    assert options.transcript == "hello there" and request.transcript_file == folder / "words.txt"
    assert first.exports == ("glb", "livelink") and first.head == folder / "head.glb"
    assert second.name == "two" and second.request.options == type(options)() and second.request.image is None
    assert second.exports == () and second.where == "lines.csv:3"


def test_jsonl_rows_take_typed_values(folder):
    manifest = write(folder / "lines.jsonl", "\n".join([
        json.dumps({"audio": "audio/one.wav", "seed": 7, "still": True, "pitch": [1, 2], "engine": "lite"}),
        "# a comment line",
        "",
        json.dumps({"audio": "audio/two.flac", "name": "b", "size": "128"}),
    ]))
    a, b = read_manifest(manifest)
    assert (a.request.options.seed, a.request.options.still, a.request.options.pitch) == (7, True, (1.0, 2.0))
    assert b.request.options.size == 128 and b.where == "lines.jsonl:4"


def test_a_bad_cell_fails_only_its_row_with_the_job_layers_message(folder):
    manifest = write(folder / "lines.csv", (
        "audio,name,pose_style,seed\n"
        "audio/one.wav,good,1,2\n"
        "audio/two.flac,style,46,2\n"
        "audio/three.mp3,seed,1,-4\n"
        "audio/missing.wav,gone,,\n"
    ))
    good, style, seed, gone = read_manifest(manifest)
    assert good.error is None
    assert style.request is None and style.error == "lines.csv:3: " + str(_refusal("pose_style", "46"))
    assert "lines.csv:4" in seed.error and "'seed'" in seed.error and "[0, 4294967295]" in seed.error
    assert gone.error.startswith("lines.csv:5: audio file not found") and gone.name == "gone"


def _refusal(name, text):
    with pytest.raises(InputError) as caught:
        OPTIONS[name].parse(text)
    return caught.value


def test_defaults_apply_unless_a_row_sets_its_own(folder):
    manifest = write(folder / "lines.csv", "audio,seed,exports\naudio/one.wav,,\naudio/two.flac,9,curves\n")
    defaults = ManifestDefaults(portrait=folder / "face.png", exports="livelink", options={"seed": 3, "engine": "lite"})
    one, two = read_manifest(manifest, defaults)
    assert (one.request.options.seed, two.request.options.seed) == (3, 9)
    assert one.request.options.engine == two.request.options.engine == "lite"
    assert (one.exports, two.exports) == (("livelink",), ("curves",))
    assert one.request.image == folder / "face.png"


def test_glb_without_a_head_and_unknown_exports_fail_their_row(folder):
    manifest = write(folder / "lines.csv", "audio,exports\naudio/one.wav,glb\naudio/two.flac,fbx\n")
    glb, fbx = read_manifest(manifest)
    assert "glb export needs a 'head'" in glb.error
    assert "unknown export 'fbx'" in fbx.error


@pytest.mark.parametrize("text, message", [
    ("name,seed\nx,1\n", "no 'audio' column"),
    ("audio,sede\na.wav,1\n", "unknown column 'sede'; did you mean 'seed'"),
    ("audio,pose_stile\na.wav,1\n", "did you mean 'pose_style'"),
    ("audio,seed,seed\na.wav,1,2\n", "column 'seed' appears twice"),
    ("audio,name\naudio/one.wav,same\naudio/two.flac,SAME\n", "rows lines.csv:2 and lines.csv:3 both write outputs named 'SAME'"),
    ("audio\naudio/one.wav\naudio/one.wav\n", "both write outputs named 'one'"),
    ("audio\n", "lists no rows"),
    ("", "empty"),
    ("audio,name\na.wav,x,extra\n", "more cells than the header"),
])
def test_manifest_wide_problems_stop_before_any_work(folder, text, message):
    manifest = write(folder / "lines.csv", text)
    with pytest.raises(InputError, match=message) as caught:
        read_manifest(manifest)
    assert str(manifest) in str(caught.value)


def test_bad_json_lines_and_names_that_are_paths(folder):
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        read_manifest(write(folder / "m.jsonl", '{"audio": "audio/one.wav"}\n{"audio": \n'))
    with pytest.raises(InputError, match="line 1 is not a JSON object"):
        read_manifest(write(folder / "m.jsonl", '["audio/one.wav"]\n'))
    row, = read_manifest(write(folder / "m.csv", "audio,name\naudio/one.wav,../escape\n"))
    assert "not a plain file name" in row.error
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(folder / "absent.csv")


def test_a_folder_of_audio_files_makes_one_row_each_with_the_portrait(folder):
    rows = read_manifest(folder / "audio", ManifestDefaults(portrait=folder / "face.png", options={"seed": "5"}))
    assert [row.name for row in rows] == ["one", "three", "two"]
    assert all(row.request.image == folder / "face.png" and row.request.options.seed == 5 for row in rows)
    (folder / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files"):
        read_manifest(folder / "empty")


def test_landmark_files_load_as_points(folder):
    points = np.stack([np.linspace(10, 200, 68), np.linspace(20, 220, 68)], 1)
    (folder / "lm.json").write_text(json.dumps(points.tolist()))
    row, = read_manifest(write(folder / "m.csv", "audio,landmarks\naudio/one.wav,lm.json\n"))
    assert np.allclose(row.request.options.landmarks, points) and row.request.landmarks_file == folder / "lm.json"


def test_json_numbers_stay_numbers_and_transcripts_may_be_inline(folder):
    manifest = write(folder / "lines.jsonl", "\n".join([
        json.dumps({"audio": "audio/one.wav", "seed": 2.0, "transcript": "hello there. how are you", "exports": "csv, json"}),
        json.dumps({"audio": "audio/two.flac", "transcript": "words.txt"}),
        json.dumps({"audio": "audio/three.mp3", "transcript": "missing/words.txt"}),
    ]))
    inline, from_file, missing = read_manifest(manifest)
    assert inline.request.options.seed == 2 and inline.request.options.transcript == "hello there. how are you"
    assert inline.request.transcript_file is None and inline.exports == ("curves", "curves_json")
    assert from_file.request.options.transcript == "hello there" and from_file.request.transcript_file == folder / "words.txt"
    assert "transcript file not found" in missing.error


@pytest.mark.parametrize("text", [
    "Audio ; Name ; Pose-Style\r\naudio/one.wav ; a ; 4\r\n",
    "audio\tname\tpose_style\naudio/one.wav\ta\t4\n",
    "\ufeffaudio,name,pose_style\naudio/one.wav,a,4\n",
])
def test_semicolons_tabs_crlf_bom_and_spaced_headers(folder, text):
    (folder / "m.csv").write_bytes(text.encode("utf-8"))
    row, = read_manifest(folder / "m.csv")
    assert row.error is None and row.name == "a" and row.request.options.pose_style == 4


def test_other_columns_are_ignored_with_a_warning(folder, caplog):
    manifest = write(folder / "lines.csv", "line_id,character,audio_file,image_path,text\n7,Hero,audio/one.wav,face.png,Hello\n")
    row, = read_manifest(manifest)
    assert row.error is None and row.name == "one" and row.request.image == folder / "face.png"
    assert "ignoring column 'character'" in caplog.text and "ignoring column 'line_id'" in caplog.text

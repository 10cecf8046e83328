"""`talkbridge generate` interrupted (Ctrl-C, SIGTERM), starved of disk or given a folder it cannot
create: exit codes, messages, nothing left (no file, no ffmpeg still running).

A full disk is simulated with a file-size limit (RLIMIT_FSIZE) on the command and the ffmpeg it
starts: writes past the limit fail with EFBIG exactly where a full disk fails with ENOSPC.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.speech import speech_like, write_wav

SCRIPT = Path(sys.executable).with_name("talkbridge")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interrupts")
    portrait = folder / "portrait.png"
    cv2.imwrite(str(portrait), np.full((64, 64, 3), 128, np.uint8))
    speech = write_wav(folder / "talk.wav", speech_like(30.0, seed=5))
    return portrait, speech


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def encoding_underway(folder: Path) -> bool:
    """ffmpeg has written part of the video (not just the empty placeholder)."""
    return folder.exists() and any(".partial" in p.name and p.stat().st_size > 0 for p in folder.iterdir())


def _default_sigint() -> None:
    """A shell's background job (`cmd &`, CI wrappers) starts with SIGINT ignored, and Python keeps an
    inherited SIG_IGN; a terminal's Ctrl-C reaches a foreground process with the default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _generate_until_encoding(inputs, out: Path) -> subprocess.Popen:
    """Start `generate` and return once ffmpeg has written part of the video."""
    portrait, speech = inputs
    process = subprocess.Popen(
        [str(SCRIPT), "generate", str(portrait), str(speech), "-o", str(out), "--engine", "lite", "--size", "128"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not encoding_underway(out):
        time.sleep(0.02)
    assert encoding_underway(out), "encoding never started"
    return process


def test_ctrl_c_exits_130_and_removes_partial_files(inputs, tmp_path):
    out = tmp_path / "out"
    process = _generate_until_encoding(inputs, out)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert leftovers(out) == []


def _children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_ends_ffmpeg_and_leaves_nothing_like_ctrl_c(inputs, tmp_path):
    out = tmp_path / "out"
    process = _generate_until_encoding(inputs, out)
    encoders = [pid for pid in _children(process.pid) if "ffmpeg" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
    assert encoders, "no ffmpeg child while encoding"
    process.send_signal(signal.SIGTERM)  # what `timeout`, systemd and job schedulers send
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert leftovers(out) == []
    assert not [pid for pid in encoders if _running(pid)]


@pytest.mark.parametrize("where", ["/proc/talkbridge-out", "/sys/talkbridge-out", "FILE/out"])
def test_an_output_folder_that_cannot_be_created_is_a_one_line_error(inputs, tmp_path, where):
    portrait, speech = inputs
    folder = where.replace("FILE", str(portrait))  # under a regular file: not a directory
    result = subprocess.run(
        [str(SCRIPT), "generate", str(portrait), str(speech), "-o", folder, "--engine", "lite"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and folder in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_the_cli_turns_any_file_system_error_into_one_line(caplog, monkeypatch):
    from talkbridge import cli

    def fails(args):
        raise PermissionError(13, "Permission denied", "/srv/readonly/out")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=fails)
    assert cli.main([]) == 1
    assert caplog.messages[-1] == "/srv/readonly/out: cannot create or write there (Permission denied)"


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))


def test_full_disk_during_encoding_fails_clearly_and_keeps_old_outputs(inputs, tmp_path):
    portrait, speech = inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "talk.motion.npz").write_bytes(b"an earlier take")
    result = subprocess.run(
        [str(SCRIPT), "generate", str(portrait), str(speech), "-o", str(out), "--engine", "lite", "--overwrite"],
        capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size,
    )
    assert result.returncode == 1, result.stderr
    assert "talk.mp4" in result.stderr and "ffmpeg" in result.stderr
    assert leftovers(out) == ["talk.motion.npz"]
    assert (out / "talk.motion.npz").read_bytes() == b"an earlier take"

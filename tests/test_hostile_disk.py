"""A full disk: the error names the output file, and no writer is left open for the garbage
collector to trip over ("Exception ignored ... seek of closed file")."""

from __future__ import annotations

import builtins
import errno
import gc
import io
import sys

import numpy as np
import pytest

from tests.speech import speech_like, write_wav


class _FullDisk(io.FileIO):
    def write(self, data):  # what a write on a full file system does
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def full_disk(monkeypatch):
    """Writes to partial files ending in one of ``full_disk.suffixes`` fail with ENOSPC."""
    real_open = builtins.open
    state = type("FullDisk", (), {"suffixes": (".npz",)})()

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        name = str(file)
        if "w" in mode and ".partial" in name and name.endswith(state.suffixes):
            buffered = io.BufferedWriter(_FullDisk(name, "w"))
            return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding=kwargs.get("encoding") or "utf-8")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_on_full_disk)
    return state


@pytest.fixture
def unraisable(monkeypatch):
    """Exceptions Python could only report as 'Exception ignored in ...'."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: seen.append(report))
    return seen


def test_a_full_disk_while_saving_motion_names_the_file_and_closes_the_writer(tmp_path, full_disk, unraisable):
    from talkbridge.core.motion import Motion
    from talkbridge.exporters.motion_file import save_motion

    motion = Motion(fps=25, engine="lite", engine_version="1", pose=np.zeros((500, 6), np.float32), blink=np.zeros(500, np.float32))
    target = tmp_path / "take.motion.npz"
    with pytest.raises(OSError) as info:
        save_motion(motion, target)
    gc.collect()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert unraisable == []
    assert list(tmp_path.iterdir()) == []


def test_generate_on_a_full_disk_is_one_line_naming_the_file(tmp_path, full_disk, unraisable, caplog):
    from talkbridge.cli import main
    from talkbridge.core.lite.samples import write_portrait

    audio = write_wav(tmp_path / "talk.wav", speech_like(0.5))
    portrait = write_portrait(tmp_path / "portrait.png")
    out = tmp_path / "out"
    assert main(["generate", str(portrait), str(audio), "-o", str(out), "--engine", "lite", "--size", "64"]) == 1
    gc.collect()
    assert caplog.messages[-1] == f"{out / 'talk.motion.npz'}: cannot create or write there (No space left on device)"
    assert unraisable == [] and list(out.iterdir()) == []


def test_a_full_disk_in_a_text_output_names_it_too(tmp_path, full_disk):
    from talkbridge.exporters.atomic import atomic_output

    full_disk.suffixes = (".json",)
    target = tmp_path / "report.json"
    with pytest.raises(OSError) as info:
        with atomic_output(target) as temp:
            with open(temp, "w") as handle:
                handle.write("{}")
                handle.flush()
    assert info.value.filename == str(target)

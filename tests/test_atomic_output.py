"""Outputs appear whole or not at all, keep existing files, and get normal permissions."""

from __future__ import annotations

import os
import stat

import pytest

from talkbridge.core.errors import InputError
from talkbridge.exporters.atomic import atomic_output


def test_success_renames_into_place_with_umask_permissions(tmp_path):
    target = tmp_path / "out.mp4"
    with atomic_output(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".mp4" and temp != target
        temp.write_bytes(b"video")
    assert target.read_bytes() == b"video"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert list(tmp_path.iterdir()) == [target]


def test_failure_and_interrupt_leave_the_old_file(tmp_path):
    target = tmp_path / "out.npz"
    target.write_bytes(b"good")
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_output(target, overwrite=True) as temp:
                temp.write_bytes(b"half")
                raise error
        assert target.read_bytes() == b"good"
        assert list(tmp_path.iterdir()) == [target]


def test_existing_output_needs_overwrite(tmp_path):
    target = tmp_path / "out.mat"
    target.write_bytes(b"good")
    with pytest.raises(InputError, match="--overwrite"):
        with atomic_output(target):
            pass
    assert target.read_bytes() == b"good"


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="output folder does not exist"):
        with atomic_output(tmp_path / "nope" / "out.mp4"):
            pass

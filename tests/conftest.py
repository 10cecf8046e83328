"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: tests that compare two runs stay deterministic and leave the
    machine's other core to the sidecar or ffmpeg they talk to."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

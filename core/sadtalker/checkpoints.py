"""Reading the official SadTalker checkpoint files safely and strictly.

Two containers exist: torch pickles (``.pth`` / ``.pth.tar``, a dict whose entry, e.g. ``'model'`` or
``'mapping'``, holds a state dict) and the combined ``SadTalker_V0.0.2_<size>.safetensors`` whose keys
are ``<subnet>.<original key>``. Pickles are only ever opened with ``weights_only=True``, so a
checkpoint can never run code. Every failure names the file and, for a layout mismatch, the missing
and unexpected keys.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from talkbridge.core.errors import CheckpointError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


def read_torch_checkpoint(path: str | Path, entry: str | None) -> StateDict:
    """Read a ``.pth``/``.pth.tar`` file and return the state dict stored under ``entry``.

    ``entry=None`` means the file itself is the state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"not a readable PyTorch checkpoint (truncated, corrupt, or holding code objects): {reason}",
            path,
        ) from error
    if entry is None:
        state = payload
    else:
        if not isinstance(payload, Mapping) or entry not in payload:
            found = sorted(payload)[:8] if isinstance(payload, Mapping) else type(payload).__name__
            raise CheckpointError(f"has no {entry!r} entry (found: {found}); is it the right file?", path)
        state = payload[entry]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"entry {entry!r} is not a state dict of tensors", path)
    return dict(state)


def read_safetensors_prefix(path: str | Path, prefix: str) -> StateDict:
    """Return the entries of a combined safetensors file under ``prefix.``, with the prefix removed.

    Only the tensors of that sub-network are read from disk (the file is memory-mapped), unlike the
    official loader which reads the whole 700 MB file once per sub-network.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    marker = prefix + "."
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            names = [name for name in handle.keys() if name.startswith(marker)]
            state = {name[len(marker):]: handle.get_tensor(name) for name in names}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"not a readable safetensors file (truncated or corrupt): {error}", path) from error
    if not state:
        raise CheckpointError(f"holds no {prefix!r} weights (no keys start with {marker!r})", path)
    return state


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` into ``module``, failing on any missing, unexpected or mis-shaped entry.

    BatchNorm ``num_batches_tracked`` counters are the one tolerated absence: they do not affect
    inference and some exporters drop them.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"does not match {type(module).__name__}", path, missing=missing, unexpected=unexpected
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointError(f"has tensors of the wrong shape for {type(module).__name__}: " + "; ".join(wrong[:8]), path)
    filled = dict(state)
    for key, value in expected.items():
        filled.setdefault(key, value)
    module.load_state_dict(filled, strict=True)
    log.debug("loaded %d tensors into %s from %s", len(state), type(module).__name__, path)

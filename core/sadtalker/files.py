"""SadTalker's checkpoint file names and how a folder is searched for them, without importing torch.

Engine choice (``auto``), ``talkbridge serve`` start-up and batch planning ask "are SadTalker's
weights here?" long before any network is built, and a lite-only user must not pay torch's start-up
for the answer. :class:`~talkbridge.core.sadtalker.models.SadTalkerModels` loads what these
functions find.

The names are the official ones (misspelling included): the combined ``SadTalker_V0.0.2_<size>``
safetensors file wins when present, as in the official code; otherwise the separate ``.pth`` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talkbridge.core.errors import CheckpointError

SIZES = (256, 512)
EXPNET_FILE = "auido2exp_00300-model.pth"
POSEVAE_FILE = "auido2pose_00140-model.pth"
RECON_FILE = "epoch_20.pth"
MAPPING_FILES = {70: "mapping_00229-model.pth.tar", 73: "mapping_00109-model.pth.tar"}
FACEVID2VID_FILE = "facevid2vid_00189-model.pth.tar"
COMBINED_FILE_PATTERN = "SadTalker_V0.0.2_{size}.safetensors"


def combined_file_name(size: int) -> str:
    """``SadTalker_V0.0.2_<size>.safetensors``: audio, recon and render weights for one size."""
    return COMBINED_FILE_PATTERN.format(size=size)


@dataclass(frozen=True)
class AudioCheckpoints:
    """Where ExpNet's and PoseVAE's weights are (the same file when it is the combined one)."""

    expnet: Path
    posevae: Path

    @classmethod
    def find(cls, folder: str | Path, size: int = 256) -> "AudioCheckpoints":
        """Locate the audio weights in a checkpoint folder (official layout), preferring safetensors."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError("checkpoint folder not found", folder)
        combined = folder / combined_file_name(size)
        if combined.is_file():
            return cls(combined, combined)
        expnet, posevae = folder / EXPNET_FILE, folder / POSEVAE_FILE
        missing = [p.name for p in (expnet, posevae) if not p.is_file()]
        if missing:
            raise CheckpointError(
                f"holds neither {combined.name} nor {', '.join(missing)}; point to a SadTalker checkpoints/ folder "
                "(the official release v0.0.2-rc files)",
                folder,
            )
        return cls(expnet, posevae)


def recon_file(folder: str | Path, size: int = 256) -> Path:
    """The face reconstruction weights: the combined file for ``size``, else ``epoch_20.pth``."""
    folder = Path(folder)
    combined = folder / combined_file_name(size)
    return combined if combined.is_file() else folder / RECON_FILE


def has_sadtalker_weights(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds at least SadTalker's audio networks (what motion needs)."""
    if folder is None:
        return False
    try:
        AudioCheckpoints.find(folder)
    except CheckpointError:
        return False
    return True


def default_checkpoint_dir() -> Path:
    """The model store's SadTalker folder (``talkbridge models download`` fills it)."""
    from talkbridge.core.weights import WeightStore

    return WeightStore().checkpoint_dir

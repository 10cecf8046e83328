"""What a long-lived worker keeps between jobs: loaded engines, networks and renderers.

A sidecar worker, a batch run and a Ray actor each own one :class:`EngineCache`; every job they run
asks it for engines, so weights load once per device and are reused across jobs of any kind. Nothing
heavy is imported until a job needs it: a lite-only cache never imports torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from talkbridge.core.once import BuiltOnce

log = logging.getLogger(__name__)


class EngineCache:
    """Engines and renderers by what they were built for, built on first use.

    ``checkpoints`` is SadTalker's weight folder (None: the model store's, when it holds them).
    ``engine_options`` maps an engine name to its constructor keywords: ``"lite"`` for
    :class:`~talkbridge.core.lite.engine.LiteEngine`, or any engine registered in
    :data:`~talkbridge.core.engine.ENGINE_FACTORIES` (a plug-in motion engine); ``"sadtalker"`` holds
    :class:`~talkbridge.core.sadtalker.models.SadTalkerModels` settings (``batch_frames``,
    ``batch_wait_ms``: cross-job batching of rendered frames).
    """

    def __init__(self, checkpoints: str | Path | None = None, engine_options: dict[str, dict[str, Any]] | None = None) -> None:
        self._checkpoints = None if checkpoints is None else Path(checkpoints)
        self._engine_options = {name: dict(kwargs) for name, kwargs in (engine_options or {}).items()}
        self._built = BuiltOnce()

    @property
    def checkpoints(self) -> Path | None:
        """SadTalker's weight folder when it holds the weights, else None (then only lite runs)."""
        from talkbridge.core.sadtalker.files import default_checkpoint_dir, has_sadtalker_weights

        folder = self._checkpoints if self._checkpoints is not None else default_checkpoint_dir()
        return folder if has_sadtalker_weights(folder) else None

    def require_checkpoints(self) -> Path:
        """SadTalker's weight folder, or an error saying what is missing and how to get it."""
        from talkbridge.core.errors import CheckpointError, InputError
        from talkbridge.core.sadtalker.files import AudioCheckpoints, default_checkpoint_dir

        folder = self.checkpoints
        if folder is not None:
            return folder
        where = "the model store" if self._checkpoints is None else str(self._checkpoints)
        try:
            AudioCheckpoints.find(self._checkpoints or default_checkpoint_dir())
        except CheckpointError as error:
            reason = str(error).removeprefix(f"{error.path}: ") if error.path is not None else str(error)
            raise InputError(
                f"no SadTalker checkpoints in {where}: it {reason}; run `talkbridge models download` or pass --checkpoints DIR"
            ) from None
        raise InputError(f"no SadTalker checkpoints in {where}; run `talkbridge models download` or pass --checkpoints DIR")

    def lite(self) -> Any:
        """The lite engine (pure numpy; safe to share: planning keeps no state between jobs)."""
        from talkbridge.core.lite.engine import LiteEngine

        return self._built.get(("lite",), lambda: LiteEngine(**self._engine_options.get("lite", {})))

    def lite_renderer(self, size: int) -> Any:
        """The mannequin preview renderer at ``size`` px."""
        from talkbridge.core.lite.mannequin import build_mannequin
        from talkbridge.core.lite.preview import PreviewRenderer

        return self._built.get(("lite-render", size), lambda: PreviewRenderer(build_mannequin(), size=size))

    def sadtalker(self, device: str = "auto", precision: str = "fp32") -> Any:
        """SadTalker's networks on ``device`` (:class:`~talkbridge.core.sadtalker.models.SadTalkerModels`)."""
        folder = self.require_checkpoints()

        def build() -> Any:
            from talkbridge.core.sadtalker.models import SadTalkerModels

            return SadTalkerModels(folder, device, precision, **self._engine_options.get("sadtalker", {}))

        return self._built.get(("sadtalker", str(folder), device, precision), build)

    def audio2face(self, device: str = "auto") -> Any:
        """The Audio2Face-3D engine on ``device``, built once per model folder and device.

        The folder is the ``"audio2face"`` engine option ``model_dir``, else the cache's checkpoint
        folder when it is an Audio2Face-3D folder (``generate --engine audio2face --checkpoints DIR``),
        else the model store's ``audio2face-mark``.
        """
        kwargs = dict(self._engine_options.get("audio2face", {}))
        if kwargs.get("model_dir") is None and self._checkpoints is not None:
            from talkbridge.core.audio2face.files import find_model_json

            kwargs["model_dir"] = find_model_json(self._checkpoints).parent
        kwargs.setdefault("device", device)

        def build() -> Any:
            from talkbridge.core.audio2face.engine import Audio2FaceEngine

            log.info("loading engine audio2face on %s", kwargs["device"])
            return Audio2FaceEngine(**kwargs)

        return self._built.get(("audio2face", str(kwargs.get("model_dir")), kwargs["device"]), build)

    def registered(self, name: str, device: str) -> Any:
        """A plug-in motion engine registered by ``name``, built once per device.

        A ``device`` keyword is passed when the engine's constructor takes one. ``audio2face`` is the
        engine :meth:`audio2face` builds (its model folder, the store's default, one key), whoever asks.
        """
        import importlib
        import inspect

        from talkbridge.core.engine import ENGINE_FACTORIES

        if name == "audio2face":
            return self.audio2face(device)

        def build() -> Any:
            kwargs = dict(self._engine_options.get(name, {}))
            module, _, attribute = ENGINE_FACTORIES[name].partition(":")
            factory = getattr(importlib.import_module(module), attribute)
            if "device" in inspect.signature(factory).parameters and "device" not in kwargs:
                kwargs["device"] = device
            log.info("loading engine %s on %s", name, device)
            return factory(**kwargs)

        return self._built.get(("registered", name, device), build)

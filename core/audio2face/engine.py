"""The audio2face engine: an Audio2Face-3D regression model behind the job layer.

One :class:`Audio2FaceEngine` holds a loaded model (network session and every matrix prepared once);
each clip gets its own :class:`Audio2FaceClip` with the state the SDK keeps per track (filters, eye
live time, previous solve), so jobs can share the engine. Per chunk: windows -> one batched network
call -> skin and tongue solve, jaw fit and eyes, in the SDK's order, at talkbridge's 25 fps.

Audio2Face-3D makes no head pose and no blinks: both come from the lite engine's seeded procedural
generators, and the job's metadata says so (``pose_source``/``blink_source``).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from talkbridge.core.audio2face.diffusion import DiffusionNetwork
from talkbridge.core.audio2face.diffusion_files import DiffusionFolder, is_diffusion_folder, load_diffusion_folder
from talkbridge.core.audio2face.emotion_input import explicit_order, network_emotions
from talkbridge.core.audio2face.eyes import EyeAnimator, eye_look_curves, eyes_channel
from talkbridge.core.audio2face.files import ModelFolder, load_model_folder
from talkbridge.core.audio2face.jaw import jaw_points, rigid_fit
from talkbridge.core.audio2face.network import A2FNetwork
from talkbridge.core.audio2face.skin import ProjectedSkin
from talkbridge.core.audio2face.solver import BlendshapeSolver
from talkbridge.core.audio2face.tongue import ProjectedTongue
from talkbridge.core.audio2face.windows import audio_windows, frame_count, target_samples
from talkbridge.core.emotion import AUTO, emotion_frames
from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import CheckpointError, InputError
from talkbridge.core.motion import ARKIT_52, EMOTIONS, FPS, TONGUE_16, MotionChunk, frames_at_rate

if TYPE_CHECKING:
    from talkbridge.core.audio2face.emotion_model import Audio2Emotion

log = logging.getLogger(__name__)

ENGINE_NAME = "audio2face"
ENGINE_VERSION = "2.3"
PROCEDURAL = "lite-procedural"


FORCE_ENV = "TALKBRIDGE_A2F_FORCE_CPU_DIFFUSION"


@dataclass(frozen=True)
class _DiffusionInfoView:
    """The regression ``NetworkInfo`` fields the post-processing and the plan read, for one diffusion identity."""

    actor: str
    explicit_emotions: tuple[str, ...]
    default_emotion: tuple[float, ...]
    samplerate: int
    num_shapes_skin: int
    num_shapes_tongue: int
    jaw_size: int
    eyes_size: int


@dataclass(frozen=True)
class _DiffusionView:
    """One identity of a diffusion folder shaped like a regression ``ModelFolder``, so the skin,
    tongue, jaw, eyes and solve code runs unchanged on the network's vertex deltas."""

    root: Path
    network_path: Path
    info: _DiffusionInfoView
    config: "object"
    data: "object"
    skin: "object"
    tongue: "object"
    implicit_emotion: np.ndarray

    @classmethod
    def of(cls, folder: DiffusionFolder, identity: str) -> "_DiffusionView":
        chosen = folder.identities[identity]
        s = folder.sizes
        info = _DiffusionInfoView(identity, folder.info.emotions, folder.default_emotion, folder.info.samplerate,
                                  s.skin, s.tongue, s.jaw, s.eyes)
        return cls(folder.root, folder.network_path, info, chosen.config, chosen.data, chosen.skin, chosen.tongue,
                   np.zeros(0, np.float32))


def default_model_dir() -> Path:
    """Where ``talkbridge models download audio2face-mark`` puts Mark's folder."""
    from talkbridge.core.weights.store import WeightStore

    return WeightStore().folder("audio2face-mark")


def default_emotion_dir() -> Path:
    """Where ``talkbridge models download audio2emotion`` puts the Audio2Emotion folder."""
    from talkbridge.core.weights.store import WeightStore

    return WeightStore().folder("audio2emotion")


def _columns(names: tuple[str, ...], table: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(source positions, table columns) of the ``names`` that ``table`` has."""
    pairs = [(i, table.index(name)) for i, name in enumerate(names) if name in table]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


@dataclass
class ClipPlan:
    """A clip's samples and the per-frame parts that need the whole clip (pose, blinks, emotion)."""

    samples: np.ndarray
    n_frames: int
    pose: np.ndarray
    blink: np.ndarray
    emotion: np.ndarray
    details: dict = field(default_factory=dict)
    predictions: np.ndarray | None = None  # (n_frames, dims) of a diffusion model, made for the whole clip
    face: "PreparedFace | None" = None  # the identity and rate this clip is animated with
    fps: int = FPS


class PreparedFace:
    """One face of a model prepared for one frame rate: its files, the solvers and the projections.

    A regression model has one face; a v3.0 diffusion model has one per identity. The skin filters'
    and the eyes' time step is the frame's, so a face is prepared per rate; jobs share it.
    """

    def __init__(self, folder: "ModelFolder | _DiffusionView", fps: int) -> None:
        self.folder = folder
        self.fps = int(fps)
        self.dt = float(np.float32(1.0 / self.fps))
        self.skin_solver = BlendshapeSolver(folder.skin)
        self.tongue_solver = BlendshapeSolver(folder.tongue)
        self.skin_projection = ProjectedSkin(
            folder.data, folder.config, self.dt, self.skin_solver.rows, self.skin_solver.design, self.skin_solver.neutral_rows
        )
        self.tongue_projection = ProjectedTongue(
            folder.data, folder.config, self.tongue_solver.rows, self.tongue_solver.design, self.tongue_solver.neutral_rows
        )
        self.arkit_sources, self.arkit_columns = _columns(folder.skin.names, ARKIT_52)
        self.tongue_sources, self.tongue_columns = _columns(folder.tongue.names, TONGUE_16)
        self.solved_arkit = {folder.skin.names[i] for i in np.flatnonzero(folder.skin.active)}


class Audio2FaceClip:
    """Per-clip state, fed chunk after chunk in order (like one SDK track)."""

    def __init__(self, engine: "Audio2FaceEngine", plan: ClipPlan) -> None:
        self.engine = engine
        self.plan = plan
        self.face = face = plan.face or engine.face(None, plan.fps)
        folder = face.folder
        self.skin = copy.copy(face.skin_projection)
        self.skin.reset()
        self.skin_solver = copy.copy(face.skin_solver)
        self.skin_solver.reset()
        self.tongue_solver = copy.copy(face.tongue_solver)
        self.tongue_solver.reset()
        self.eyes = EyeAnimator(folder.config, folder.data.saccades, face.dt)
        self.implicit = folder.implicit_emotion

    def chunk(self, start: int, stop: int) -> MotionChunk:
        """Frames ``start .. stop - 1``; chunks must come in order, as the filters and solve run forward."""
        engine, face, plan = self.engine, self.face, self.plan
        folder = face.folder
        info = folder.info
        if plan.predictions is not None:  # diffusion: the recurrent network already ran over the clip
            result = plan.predictions[start:stop]
        else:
            targets = target_samples(start, stop, face.fps, 1, info.samplerate)
            windows = audio_windows(plan.samples, targets, info.buffer_len, info.buffer_ofs, folder.config.input_strength)
            emotions = network_emotions(self.implicit, plan.emotion[start:stop], info.explicit_emotions)
            result = engine.network.run(windows, emotions)
        skin_end = info.num_shapes_skin
        tongue_end = skin_end + info.num_shapes_tongue
        jaw_end = tongue_end + info.jaw_size
        skin_weights = self.skin_solver.solve(self.skin.rhs(result[:, :skin_end]))
        tongue_weights = self.tongue_solver.solve(face.tongue_projection.rhs(result[:, skin_end:tongue_end]))
        jaw = rigid_fit(folder.data.neutral_jaw, jaw_points(result[:, tongue_end:jaw_end], folder.data.neutral_jaw, folder.config))
        eyes = eyes_channel(self.eyes.angles(result[:, jaw_end : jaw_end + info.eyes_size]))
        n = stop - start
        arkit = np.zeros((n, len(ARKIT_52)), np.float32)
        arkit[:, face.arkit_columns] = skin_weights[:, face.arkit_sources]
        for name, curve in eye_look_curves(eyes).items():
            if name not in face.solved_arkit:
                arkit[:, ARKIT_52.index(name)] = curve  # the model leaves gaze to its eye rotations
        blink = plan.blink[start:stop]
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            column = ARKIT_52.index(name)
            arkit[:, column] = np.maximum(arkit[:, column], blink)
        tongue = np.zeros((n, len(TONGUE_16)), np.float32)
        tongue[:, face.tongue_columns] = tongue_weights[:, face.tongue_sources]
        return MotionChunk(
            start=start, pose=plan.pose[start:stop], blink=blink, arkit=arkit, tongue=tongue,
            emotion=plan.emotion[start:stop], eyes=eyes, jaw=jaw,
        )


class Audio2FaceEngine:
    """Audio2Face-3D regression model as a motion engine (registered as ``"audio2face"``).

    ``model_dir`` is a model folder in the Hugging Face layout (default: the store's Mark);
    ``device`` picks onnxruntime's provider (``auto``: CUDA when onnxruntime-gpu sees a GPU);
    ``threads`` caps onnxruntime's CPU threads; ``batch`` is frames per network call.
    """

    name = ENGINE_NAME
    version = ENGINE_VERSION

    def __init__(self, model_dir: str | Path | None = None, device: str = "auto", threads: int | None = None,
                 batch: int = 64, emotion_model_dir: str | Path | None = None, identity: str | None = None,
                 force_cpu_diffusion: bool | None = None) -> None:
        self.device = device
        self.emotion_model_dir = None if emotion_model_dir is None else Path(emotion_model_dir)
        self._emotion_model = None
        if model_dir is None:
            model_dir = default_model_dir()
            if not (model_dir / "model.json").is_file():
                raise CheckpointError(
                    "no Audio2Face-3D model.json here; run `talkbridge models download audio2face-mark` "
                    "(or `models adopt` a downloaded folder), or pass --checkpoints DIR", model_dir,
                )
        self.model_dir = Path(model_dir)
        self.diffusion: DiffusionFolder | None = None
        self._faces: dict[tuple[str | None, int], PreparedFace] = {}
        self._views: dict[str, _DiffusionView] = {}
        self._lock = threading.Lock()
        if is_diffusion_folder(model_dir):
            if force_cpu_diffusion is None:
                force_cpu_diffusion = os.environ.get(FORCE_ENV, "") not in ("", "0")
            self.diffusion = load_diffusion_folder(model_dir, identity)
            self.identity = next(iter(self.diffusion.identities))  # the default face; a job may pick another
            self.folder = self._view(self.identity)
            self.network = DiffusionNetwork(self.diffusion.network_path, self.diffusion.info, device, bool(force_cpu_diffusion))
        else:
            self.identity = None
            self.folder = load_model_folder(Path(model_dir))
            self.network = A2FNetwork(self.folder.network_path, self.folder.info, device, threads, batch)
        folder = self.folder
        self.face(None, FPS)  # prepared now, so a bad blendshape file fails at load, before any job
        missing = sorted(set(folder.skin.names) - set(ARKIT_52))
        if missing:
            log.info("audio2face: skin poses outside ARKit-52 are not exported: %s", ", ".join(missing))
        log.info("audio2face: model %s (%s) from %s", folder.info.actor or "?", folder.network_path.name, folder.root)

    def face(self, identity: str | None, fps: int) -> PreparedFace:
        """The face ``identity`` prepared at ``fps`` (built once, shared by jobs; None: the default face).

        A regression model is one actor: asking for another name is an error naming the one it has. A
        diffusion model reads the chosen identity's files on first use.
        """
        name = self._identity_name(identity)
        key = (name, int(fps))
        with self._lock:
            face = self._faces.get(key)
            if face is None:
                folder = self.folder if name is None else self._view(name)
                face = self._faces[key] = PreparedFace(folder, int(fps))
            return face

    def _identity_name(self, identity: str | None) -> str | None:
        if self.diffusion is None:
            actor = self.folder.info.actor
            if identity is not None and identity.lower() != str(actor).lower():
                raise InputError(f"option 'identity' (--identity) is {identity!r}, but this Audio2Face-3D model animates "
                                 f"only {actor!r}; identities are for the v3.0 diffusion model", self.folder.root / "model.json")
            return None
        if identity is None:
            return self.identity
        names = {name.lower(): name for name in self.diffusion.info.identities}
        if identity.lower() not in names:
            raise InputError(f"option 'identity' (--identity) is {identity!r}; this diffusion model has: "
                             f"{', '.join(self.diffusion.info.identities)}", self.diffusion.root / "model.json")
        return names[identity.lower()]

    def _view(self, identity: str) -> "_DiffusionView":
        """One identity of the diffusion folder (its files read once); the caller holds the lock or is ``__init__``."""
        view = self._views.get(identity)
        if view is None:
            folder = self.diffusion if identity in self.diffusion.identities else load_diffusion_folder(self.model_dir, identity)
            view = self._views[identity] = _DiffusionView.of(folder, identity)
        return view

    def plan(self, request: MotionRequest) -> ClipPlan:
        """Load the audio and make the clip-wide parts: pose and blinks (procedural) and the emotion.

        ``request.options`` may carry ``fps`` (the motion's rate, default 25), ``identity`` (a
        diffusion model's face) and ``emotion``. The procedural pose and blinks are made at 25 fps,
        as the lite engine makes them, and resampled to the clip's rate.
        """
        from talkbridge.core.lite.articulation import level_per_frame, loudness
        from talkbridge.core.lite.procedural import blink_curve, head_pose

        fps = int(request.options.get("fps") or FPS)
        face = self.face(request.options.get("identity"), fps)
        folder = face.folder
        samples = self._samples(request)
        n_frames = frame_count(samples.size, fps, 1, folder.info.samplerate)
        emotion_option = request.options.get("emotion")
        if emotion_option == AUTO:
            explicit = self.emotion_model().frames(samples, n_frames, fps, folder.info.explicit_emotions)
        else:
            explicit = emotion_frames(emotion_option, n_frames, fps)
        if explicit is None:
            default = dict(zip(folder.info.explicit_emotions, folder.info.default_emotion))
            explicit = np.tile(np.array([default.get(name, 0.0) for name in EMOTIONS], np.float32), (n_frames, 1))
        blink_stream, pose_stream = np.random.SeedSequence(request.seed).spawn(2)
        n_procedural = frame_count(samples.size, FPS, 1, folder.info.samplerate)
        level = level_per_frame(loudness(samples), n_procedural)
        pose = head_pose(level, np.random.default_rng(pose_stream), request.pose_intensity, request.still)
        blink = blink_curve(n_procedural, np.random.default_rng(blink_stream))
        pose = frames_at_rate(pose.astype(np.float32), n_frames, FPS, fps)
        blink = frames_at_rate(blink.astype(np.float32), n_frames, FPS, fps)
        details = {
            "model": folder.info.actor,
            "model_dir": str(folder.root),
            "network": folder.network_path.name,
            "providers": list(self.network.providers),
            "fps": fps,
            "pose_source": "still" if request.still else PROCEDURAL,
            "blink_source": PROCEDURAL,
            "implicit_emotion": {"shot": folder.config.source_shot, "frame": folder.config.source_frame},
            # Where `arkit` is not the solve's own output: blinks on top of the eyelids, gaze from the eye rotations.
            "arkit_blink": "max(solve, blink) on eyeBlinkLeft/eyeBlinkRight",
            "arkit_from_eyes": sorted(name for name in ARKIT_52 if name.startswith("eyeLook") and name not in face.solved_arkit),
            "seed": int(request.seed),
        }
        if emotion_option == AUTO:
            details["emotion_source"] = f"audio2emotion ({self.emotion_model().folder.root})"
        explicit = explicit.astype(np.float32)
        predictions = None
        if self.diffusion is not None:
            identity = folder.info.actor
            details.update(identity=identity, diffusion_fps=self.diffusion.info.fps)
            predictions = self._diffusion_clip(samples, explicit, n_frames, request.seed, identity, fps, folder.config.input_strength)
        return ClipPlan(samples, n_frames, pose, blink, explicit, details, predictions, face=face, fps=fps)

    def _diffusion_clip(self, samples: np.ndarray, explicit: np.ndarray, n_frames: int, seed: int, identity: str,
                        fps: int, input_strength: float) -> np.ndarray:
        """The diffusion network over the whole clip at the job's rate (its GRU state runs call to call,
        so it cannot start mid-clip); the emotion is the job's, read at each model frame's time."""
        info = self.diffusion.info
        order = explicit_order(info.emotions)
        frame_times = np.arange(n_frames, dtype=np.float64) * info.samplerate / fps

        def emotion_at(times: np.ndarray) -> np.ndarray:
            columns = [np.interp(times, frame_times, explicit[:, column]) for column in order]
            return np.stack(columns, axis=1).astype(np.float32)

        return self.network.clip(samples, identity, emotion_at, int(seed), fps, n_frames, input_strength)

    def emotion_model(self) -> "Audio2Emotion":
        """The Audio2Emotion model for ``--emotion auto``, loaded on first use.

        Its folder is the ``emotion_model_dir`` engine option, else the store's ``audio2emotion``.
        """
        if self._emotion_model is None:
            from talkbridge.core.audio2face.emotion_model import Audio2Emotion

            folder = self.emotion_model_dir or default_emotion_dir()
            if not (folder / "model.json").is_file() and not folder.is_file():
                raise CheckpointError(
                    "--emotion auto needs the Audio2Emotion model and there is no model.json here; run "
                    "`talkbridge models download audio2emotion` (or `models adopt DIR` for a folder you have). Its licence "
                    "allows it only together with Audio2Face", folder / "model.json",
                )
            self._emotion_model = Audio2Emotion(folder, self.device)
        return self._emotion_model

    def _samples(self, request: MotionRequest) -> np.ndarray:
        if isinstance(request.audio, np.ndarray):
            samples = np.asarray(request.audio, np.float32).reshape(-1)
            where = None
        else:
            from talkbridge.core.audio import load_audio

            samples = load_audio(Path(request.audio), allow_silence=True)
            where = request.audio
        if samples.size == 0:
            raise InputError("the audio has no samples", where)
        if not np.all(np.isfinite(samples)):
            raise InputError("the audio contains NaN or infinite samples", where)
        return samples

    def clip(self, plan: ClipPlan) -> Audio2FaceClip:
        return Audio2FaceClip(self, plan)

    def stream_motion(self, request: MotionRequest) -> Iterator[MotionChunk]:
        """Yield ``request.chunk_frames``-long chunks, first frame first."""
        if request.chunk_frames <= 0:
            raise InputError(f"chunk_frames must be positive, got {request.chunk_frames}")
        plan = self.plan(request)
        clip = self.clip(plan)
        for start in range(0, plan.n_frames, request.chunk_frames):
            yield clip.chunk(start, min(plan.n_frames, start + request.chunk_frames))

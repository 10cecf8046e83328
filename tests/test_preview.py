"""`talkbridge preview` and batch's ``preview`` export: the take rendered by Blender (bpy, Workbench)
on the user's head, with the speech, as a short H.264 video.

Small on purpose (96 px, about 1 s): the checks are that the video has one frame per motion frame
and the speech, that the frames show the head (not a blank frame) and that they change as the mouth
moves, and that a textured multi-mesh head with its own idle animation plays the take, not its idle.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from talkbridge.cli import main
from talkbridge.core.engine import MotionRequest
from talkbridge.core.lite.engine import LiteEngine
from talkbridge.core.lite.mannequin import build_mannequin
from talkbridge.core.motion import ARKIT_52, Motion
from talkbridge.exporters.gltf import write_head_glb
from talkbridge.exporters.motion_file import save_motion
from tests.heads import arkit_head, grid_sphere, synthetic_motion, write_third_party_head
from tests.speech import speech_like, write_wav

pytestmark = pytest.mark.timeout(240)

SIZE = 96


def _frames(video: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


def _streams(video: Path) -> str:
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(video)], capture_output=True, text=True)
    return probe.stderr


@pytest.fixture(scope="module")
def lite_take(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preview")
    audio = write_wav(folder / "line.wav", speech_like(1.2, seed=3))
    chunks = list(LiteEngine().stream_motion(MotionRequest(audio=audio, chunk_frames=50)))
    motion = Motion.from_chunks(chunks, engine="lite", engine_version="1.0", metadata={"audio": str(audio)})
    return {
        "folder": folder, "audio": audio, "motion": motion,
        "motion_file": save_motion(motion, folder / "line.motion.npz"),
        "head": write_head_glb(build_mannequin(), folder / "mannequin.glb"),
    }


def test_preview_renders_the_take_with_the_speech_one_frame_per_motion_frame(lite_take, tmp_path):
    output = tmp_path / "preview.mp4"
    code = main(["-q", "preview", str(lite_take["head"]), str(lite_take["motion_file"]), "-o", str(output), "--size", str(SIZE)])
    assert code == 0 and output.is_file()
    motion = lite_take["motion"]
    frames = _frames(output)
    assert frames.shape == (motion.n_frames, SIZE, SIZE, 3)
    streams = _streams(output)
    assert "Audio: aac" in streams  # the motion file's recorded speech
    # Not blank: the head stands out from the background in every frame.
    assert all(frame.std() > 10 for frame in frames)
    centre = frames[:, SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4].astype(np.float32)
    background = frames[:, :4, :4].astype(np.float32).mean()
    assert abs(centre.mean() - background) > 10
    # The face moves: the frame where the jaw is widest open differs from the first one.
    jaw = motion.arkit[:, ARKIT_52.index("jawOpen")]
    widest = int(np.argmax(jaw))
    change = np.abs(frames[widest].astype(np.float32) - frames[0]).mean()
    assert jaw[widest] - jaw[0] > 0.1 and change > 0.3, (jaw[widest], change)


def test_sadtalker_motion_gets_its_mouth_from_the_speech(lite_take, tmp_path):
    import dataclasses

    still = synthetic_motion(frames=30, engine="sadtalker")
    motion = dataclasses.replace(still, arkit=None, pose=np.zeros_like(still.pose), blink=np.zeros_like(still.blink),
                                 metadata={"audio": str(lite_take["audio"])})
    motion_file = save_motion(motion, tmp_path / "sadtalker.motion.npz")
    output = tmp_path / "preview.mp4"
    code = main(["-q", "preview", str(lite_take["head"]), str(motion_file), "-o", str(output), "--size", str(SIZE)])
    assert code == 0
    frames = _frames(output).astype(np.float32)
    assert np.abs(frames - frames[0]).mean(axis=(1, 2, 3)).max() > 0.3  # only the mouth can move: no pose, no blinks


def test_an_existing_video_is_kept_without_overwrite(lite_take, tmp_path):
    output = tmp_path / "preview.mp4"
    output.write_bytes(b"earlier take")
    code = main(["-q", "preview", str(lite_take["head"]), str(lite_take["motion_file"]), "-o", str(output), "--size", str(SIZE)])
    assert code == 1 and output.read_bytes() == b"earlier take"


BLENDER5_PYTHON = Path(__file__).resolve().parents[1] / ".venv-blender5" / "bin" / "python"


@pytest.mark.parametrize("blender", ["bpy 4.5", "bpy 5.3"])
def test_a_textured_multi_mesh_head_plays_the_take_not_its_own_idle(tmp_path, monkeypatch, blender):
    from talkbridge.exporters.preview import PYTHON_ENV, render_preview

    if blender == "bpy 5.3":  # the renderer child in the Blender 5 venv (bpy, numpy, talkbridge without extras)
        assert BLENDER5_PYTHON.is_file(), f"{BLENDER5_PYTHON} is missing: ./scripts/dev setup creates it"
        monkeypatch.setenv(PYTHON_ENV, str(BLENDER5_PYTHON))
    else:
        monkeypatch.delenv(PYTHON_ENV, raising=False)

    head = write_third_party_head(tmp_path)  # Face (textured) + Teeth under a 0.01-scaled root with an Idle animation
    motion = synthetic_motion(frames=25)
    still = Motion(fps=motion.fps, engine="lite", engine_version="1.0", pose=np.zeros_like(motion.pose), blink=np.zeros(25, np.float32),
                   arkit=np.zeros_like(motion.arkit))
    rendered: list[int] = []
    moving = render_preview(head, motion, tmp_path / "moving.mp4", size=SIZE, progress=rendered.append)
    assert sum(rendered) == 25 and all(step > 0 for step in rendered)  # the progress bar's feed
    resting = render_preview(head, still, tmp_path / "still.mp4", size=SIZE, audio=None)
    assert moving.frames == 25 and moving.audio is None and "Audio" not in _streams(tmp_path / "moving.mp4")
    moving_frames, still_frames = _frames(tmp_path / "moving.mp4"), _frames(tmp_path / "still.mp4")
    # Textured: the skin texture's warm colour (200, 160, 140, shaded by the studio light) shows, not
    # Workbench's grey, on a good part of the frame.
    r, g, b = (still_frames[0][:, :, i].astype(np.int32) for i in range(3))
    skin = (r - b > 25) & (r > g) & (g > b)
    assert skin.mean() > 0.2, skin.mean()
    # A still take stays still (the head's own Idle does not play); the real take moves.
    assert np.abs(still_frames.astype(np.float32) - still_frames[0]).mean(axis=(1, 2, 3)).max() < 0.5
    assert np.abs(moving_frames.astype(np.float32) - moving_frames[0]).mean(axis=(1, 2, 3)).max() > 0.5


def _fake_python(folder: Path, body: str) -> Path:
    script = folder / "python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_a_python_without_bpy_is_a_one_line_error_naming_the_extra(lite_take, tmp_path, monkeypatch, caplog):
    from talkbridge.exporters.preview import PYTHON_ENV

    fake = _fake_python(tmp_path, "echo \"ModuleNotFoundError: No module named 'bpy'\" >&2; exit 1")
    monkeypatch.setenv(PYTHON_ENV, str(fake))
    output = tmp_path / "preview.mp4"
    code = main(["preview", str(lite_take["head"]), str(lite_take["motion_file"]), "-o", str(output), "--size", str(SIZE)])
    assert code == 1 and not output.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "talkbridge[preview]" in errors[0] and str(fake) in errors[0]


def test_a_renderer_that_hangs_is_stopped_and_nothing_is_written(lite_take, tmp_path, monkeypatch):
    import time

    from talkbridge.exporters import preview

    monkeypatch.setenv(preview.PYTHON_ENV, str(_fake_python(tmp_path, "sleep 60 & sleep 60; wait")))
    monkeypatch.setattr(preview, "RENDER_TIMEOUT_S", 1.0)
    monkeypatch.setattr(preview, "RENDER_SECONDS_PER_FRAME", 0.0)
    began = time.monotonic()
    with pytest.raises(preview.PreviewError, match="did not render the preview within 1 s"):
        preview.render_preview(lite_take["head"], lite_take["motion"], tmp_path / "preview.mp4", size=SIZE)
    assert time.monotonic() - began < 20 and not (tmp_path / "preview.mp4").exists()


def test_a_full_body_character_is_framed_on_its_face(tmp_path):
    from talkbridge.core.head_mesh import HeadMesh
    from talkbridge.exporters.preview import render_preview

    head = arkit_head()  # a 0.2 m sphere head whose shape keys move its face
    body_points, body_faces = grid_sphere(radius=0.3, rings=10, segments=16)
    body_points = body_points * np.array([1.0, 3.0, 1.0], np.float32) + np.array([0.0, -0.9, 0.0], np.float32)  # 1.8 m tall
    points = np.concatenate([head.positions, body_points])
    skin, cloth = np.array([0.9, 0.6, 0.45], np.float32), np.array([0.1, 0.2, 0.9], np.float32)
    character = HeadMesh(
        name="full_body", positions=points, indices=np.concatenate([head.indices, body_faces + len(head.positions)]),
        morph_targets={name: np.concatenate([delta, np.zeros_like(body_points)]) for name, delta in head.morph_targets.items()},
        colors=np.concatenate([np.tile(skin, (len(head.positions), 1)), np.tile(cloth, (len(body_points), 1))]),
    )
    glb = write_head_glb(character, tmp_path / "body.glb")
    render_preview(glb, synthetic_motion(frames=5), tmp_path / "body.mp4", size=SIZE)
    frame = _frames(tmp_path / "body.mp4")[0].astype(np.int32)
    r, g, b = frame[:, :, 0], frame[:, :, 1], frame[:, :, 2]
    skin_share = ((r > b + 20) & (r > g)).mean()  # the whole 1.8 m figure would leave the head a few pixels
    assert skin_share > 0.25, skin_share


@pytest.mark.slow
def test_batch_writes_a_preview_per_row(tmp_path):
    lines = tmp_path / "lines"
    lines.mkdir()
    write_wav(lines / "hello.wav", speech_like(0.8, seed=5))
    head = write_head_glb(build_mannequin(), tmp_path / "head.glb")
    out = tmp_path / "out"
    code = main(["-q", "batch", str(lines), "-o", str(out), "--engine", "lite", "--size", "64",
                 "--exports", "preview", "--head", str(head)])
    assert code == 0
    preview = out / "hello.preview.mp4"
    assert preview.is_file() and (out / "hello.mp4").is_file()
    frames = _frames(preview)
    assert len(frames) == 20 and frames.shape[1:] == (256, 256, 3) and "Audio: aac" in _streams(preview)

"""The audio2face engine against plain references written from the SPEC, on synthetic model folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from talkbridge.core.audio2face.emotion_input import network_emotions
from talkbridge.core.audio2face.engine import Audio2FaceEngine
from talkbridge.core.audio2face.eyes import EyeAnimator, eyes_channel
from talkbridge.core.audio2face.files import load_model_folder
from talkbridge.core.audio2face.jaw import jaw_points, rigid_fit
from talkbridge.core.audio2face.skin import ProjectedSkin, SkinAnimator
from talkbridge.core.audio2face.solver import BlendshapeSolver
from talkbridge.core.audio2face.tongue import ProjectedTongue, tongue_vertices
from talkbridge.core.audio2face.windows import audio_windows, frame_count, target_samples
from talkbridge.core.emotion import parse_emotion_text
from talkbridge.core.engine import MotionRequest
from talkbridge.core.errors import CheckpointError
from talkbridge.core.motion import ARKIT_52, EMOTIONS, TONGUE_16
from tests.audio2face_models import SKIN_POSES, TONGUE_POSES, write_model_folder, write_onnx

DT = float(np.float32(1 / 25))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model_folder(tmp_path_factory.mktemp("a2f") / "synthetic")


@pytest.fixture(scope="module")
def folder(model):
    return load_model_folder(model.root)


def speech(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.4 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.normal(size=t.size)).astype(np.float32)


# --- windows --------------------------------------------------------------------------------------

def test_target_samples_at_25_and_30_fps():
    assert target_samples(0, 4, 25).tolist() == [0, 640, 1280, 1920]
    assert target_samples(0, 4, 30).tolist() == [0, 533, 1066, 1600]  # floor(k * 16000 / 30)
    assert target_samples(0, 3, 60, 2).tolist() == [0, 533, 1066]  # 60/2 reduces to 30/1
    assert frame_count(16000, 25) == 25 and frame_count(16001, 25) == 26 and frame_count(1, 30) == 1
    assert frame_count(16000, 30) == 30 and frame_count(16534, 30) == 32  # t_31 = 16533 < 16534


def test_windows_place_the_frame_sample_at_the_offset_and_pad_with_zeros():
    samples = np.arange(1, 3001, dtype=np.float32)  # sample i holds i + 1, so zeros are padding
    windows = audio_windows(samples, target_samples(0, 5, 25), 8320, 4160, strength=1.0)
    assert windows.shape == (5, 8320)
    assert np.all(windows[0, :4160] == 0) and windows[0, 4160] == 1.0  # frame 0 is centred on sample 0
    assert windows[1, 4160] == 641.0 and windows[1, 4160 - 640] == 1.0 and np.all(windows[1, : 4160 - 640] == 0)
    assert np.all(windows[4, 4160 + 3000 - 2560 :] == 0)  # past the clip's end: zeros
    assert windows[4, 4160 + 3000 - 2560 - 1] == 3000.0


def test_input_strength_scales_clip_samples_only():
    samples = np.full(1000, 0.5, np.float32)
    windows = audio_windows(samples, np.array([0]), 8320, 4160, strength=1.3)
    assert np.allclose(windows[0, 4160:5160], 0.65) and np.all(windows[0, :4160] == 0) and np.all(windows[0, 5160:] == 0)


# --- emotion input --------------------------------------------------------------------------------

def test_emotion_vector_is_the_source_row_then_the_explicit_weights(folder):
    database = np.load(folder.emotions.path)
    expected_implicit = database["emo_db"][5 + 2]  # shot_b starts at row 5; source_frame 2
    assert np.array_equal(folder.implicit_emotion, expected_implicit)
    explicit = parse_emotion_text("joy=0.6,sadness=0.2").frames(3, 25)
    vector = network_emotions(folder.implicit_emotion, explicit, folder.info.explicit_emotions)
    assert vector.shape == (3, 1, 26)
    assert np.array_equal(vector[:, 0, :16], np.tile(expected_implicit, (3, 1)))
    assert vector[0, 0, 16 + EMOTIONS.index("joy")] == pytest.approx(0.6)
    assert vector[0, 0, 16 + EMOTIONS.index("sadness")] == pytest.approx(0.2)
    reordered = tuple(reversed(EMOTIONS))  # a model listing its emotions in another order hears them by name
    vector = network_emotions(folder.implicit_emotion, explicit, reordered)
    assert vector[0, 0, 16 + reordered.index("joy")] == pytest.approx(0.6)


# --- skin, tongue: plain references ---------------------------------------------------------------

def reference_skin(folder, coefficients, dt=DT):
    """SPEC 6.1-6.2 written out vertex by vertex, frame by frame (``dt``: seconds per frame)."""
    data, c = folder.data, folder.config
    mean = data.skin_mean.astype(np.float64)
    y = mean[:, 1]
    norm = (y - y.min()) / (y.max() - y.min())
    mask = 1 / (1 + np.exp(-(c.face_mask_level - norm) / c.face_mask_softness))
    basis = data.skin_basis.astype(np.float64).reshape(len(coefficients[0]), -1, 3)
    out = []
    state = {}
    for k, coeffs in enumerate(coefficients):
        delta = np.tensordot(coeffs, basis, axes=1)
        e = c.skin_strength * delta - c.eyelid_open_offset * data.eye_close_delta + c.lip_open_offset * data.lip_open_delta
        filtered = {}
        for part, half_life in (("lower", c.lower_face_smoothing), ("upper", c.upper_face_smoothing)):
            alpha = 1 - 0.5 ** (dt / half_life)
            if k == 0:
                state[part] = [e.copy(), e.copy()]
            else:
                s1, s2 = state[part]
                s1 = s1 + alpha * (e - s1)
                s2 = s2 + alpha * (s1 - s2)
                state[part] = [s1, s2]
            filtered[part] = state[part][1]
        out.append(mean + c.upper_face_strength * filtered["upper"] * (1 - mask)[:, None]
                   + c.lower_face_strength * filtered["lower"] * mask[:, None])
    return np.array(out)


def test_skin_animator_matches_the_reference(folder):
    coefficients = np.random.default_rng(3).normal(0, 1, (12, folder.info.num_shapes_skin)).astype(np.float32)
    animator = SkinAnimator(folder.data, folder.config, DT)
    first = animator.vertices(coefficients[:5])  # two calls continue the filters
    rest = animator.vertices(coefficients[5:])
    expected = reference_skin(folder, coefficients)
    assert np.allclose(np.concatenate([first, rest]), expected, atol=1e-5)
    assert not np.allclose(expected[1:], reference_skin(folder, coefficients[1:]))  # the filters do carry state


def test_projected_skin_equals_solving_the_full_vertices(folder):
    coefficients = np.random.default_rng(4).normal(0, 1, (10, folder.info.num_shapes_skin)).astype(np.float32)
    solver = BlendshapeSolver(folder.skin)
    projected = ProjectedSkin(folder.data, folder.config, DT, solver.rows, solver.design, solver.neutral_rows)
    full = SkinAnimator(folder.data, folder.config, DT).vertices(coefficients)
    assert np.allclose(projected.rhs(coefficients), solver.rhs_from_poses(full), atol=1e-4)


def test_tongue_and_its_projection(folder):
    c, data = folder.config, folder.data
    coefficients = np.random.default_rng(5).normal(0, 1, (4, folder.info.num_shapes_tongue)).astype(np.float32)
    vertices = tongue_vertices(coefficients, data, c)
    basis = data.tongue_basis.reshape(len(coefficients[0]), -1, 3)
    expected = data.tongue_mean + c.tongue_strength * np.tensordot(coefficients, basis, axes=1)
    expected[..., 1] += c.tongue_height_offset
    expected[..., 2] += c.tongue_depth_offset
    assert np.allclose(vertices, expected, atol=1e-5)
    solver = BlendshapeSolver(folder.tongue)
    projected = ProjectedTongue(data, c, solver.rows, solver.design, solver.neutral_rows)
    assert np.allclose(projected.rhs(coefficients), solver.rhs_from_poses(vertices), atol=1e-4)


# --- the solve against scipy's BVLS ---------------------------------------------------------------

def reference_solve(bs, poses):
    """SPEC 6.6 written out: A, b, lsq_linear(method='bvls'), cancel pairs, multipliers and offsets."""
    rows = np.arange(bs.neutral.size) if bs.mask is None else np.array([3 * v + i for v in bs.mask for i in range(3)])
    active = [i for i in range(len(bs.names)) if bs.active[i]]
    d = np.stack([bs.deltas[i].reshape(-1)[rows] for i in active], axis=1).astype(np.float64)
    n0 = bs.neutral.reshape(-1)[rows]
    n = len(active)
    corner = bs.neutral.max(axis=0) - bs.neutral.min(axis=0)
    s = (np.sqrt(np.sum(corner.astype(np.float64) ** 2)) / bs.template_bb_size) ** 2

    def pairs(ids):
        found = []
        for value in set(ids):
            where = [p for p, v in enumerate(ids) if v == value]
            if len(where) == 2:
                found.append(tuple(where))
        return found

    sym_pairs = pairs([bs.symmetry_ids[i] for i in active])
    cancel_pairs = pairs([bs.cancel_ids[i] for i in active])
    sym = np.zeros((len(sym_pairs), n))
    for r, (i, j) in enumerate(sym_pairs):
        sym[r, i], sym[r, j] = 1, -1
    a = d.T @ d + bs.l1 ** 2 * 0.25 * s * np.ones((n, n)) + bs.l2 * 10 * s * np.eye(n) + bs.temporal * 100 * s * np.eye(n) \
        + bs.symmetry * 10 * s * sym.T @ sym
    previous = np.zeros(n)
    out = []
    for pose in poses:
        b = d.T @ (pose.reshape(-1)[rows] - n0) + bs.temporal * s * previous
        x = lsq_linear(a, b, bounds=(0, 1), method="bvls", tol=1e-12).x
        if cancel_pairs:
            upper = np.ones(n)
            for i, j in cancel_pairs:
                upper[j if x[i] >= x[j] else i] = 1e-10
            x = lsq_linear(a, b, bounds=(np.zeros(n), upper), method="bvls", tol=1e-12).x
        previous = x
        full = np.zeros(len(bs.names))
        full[active] = x
        out.append(full * bs.multipliers + bs.offsets)
    return np.array(out)


def test_skin_solve_matches_scipy_bvls_with_cancel_pairs_multipliers_and_offsets(folder):
    bs = folder.skin
    rng = np.random.default_rng(6)
    truth = rng.uniform(-0.3, 1.3, (15, len(bs.names)))  # outside the box too, so bounds are active
    truth[:, SKIN_POSES.index("mouthPucker")] = rng.uniform(0.3, 0.9, 15)
    truth[:, SKIN_POSES.index("mouthFunnel")] = rng.uniform(0.3, 0.9, 15)  # both on: the cancel pair must bite
    poses = bs.neutral[None] + np.einsum("tp,pvc->tvc", truth, bs.deltas)
    solver = BlendshapeSolver(bs)
    got = np.concatenate([solver.solve(solver.rhs_from_poses(poses[:7])), solver.solve(solver.rhs_from_poses(poses[7:]))])
    expected = reference_solve(bs, poses)
    assert np.allclose(got, expected, atol=1e-6)
    pucker, funnel = SKIN_POSES.index("mouthPucker"), SKIN_POSES.index("mouthFunnel")
    assert np.all(np.minimum(got[:, pucker], got[:, funnel]) <= 1e-9)  # one of each cancel pair is off
    assert np.allclose(got[:, SKIN_POSES.index("eyeLookDownLeft")], 0.05)  # inactive pose: its offset
    assert got[:, SKIN_POSES.index("jawOpen")].max() > 1.0  # the 1.5 multiplier applies after the clamp
    assert got.min() >= -1e-9


def test_tongue_solve_matches_scipy_bvls(folder):
    bs = folder.tongue
    truth = np.random.default_rng(7).uniform(-0.2, 1.2, (10, len(bs.names)))
    poses = bs.neutral[None] + np.einsum("tp,pvc->tvc", truth, bs.deltas)
    solver = BlendshapeSolver(bs)
    assert np.allclose(solver.solve(solver.rhs_from_poses(poses)), reference_solve(bs, poses), atol=1e-6)


# --- jaw and eyes ---------------------------------------------------------------------------------

def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_kabsch_recovers_a_known_rotation_and_translation():
    points = np.random.default_rng(8).normal(0, 1, (5, 3))
    r = rotation([0.3, 1.0, -0.2], 0.4)
    t = np.array([0.1, -0.5, 2.0])
    moved = points @ r.T + t
    matrix = rigid_fit(points, moved[None])[0]
    assert np.allclose(matrix[:3, :3], r, atol=1e-5) and np.allclose(matrix[:3, 3], t, atol=1e-5)
    assert np.array_equal(matrix[3], [0, 0, 0, 1])
    mirrored = rigid_fit(points, (points * [-1, 1, 1])[None])[0]  # a reflection is never returned
    assert np.linalg.det(mirrored[:3, :3]) == pytest.approx(1.0, abs=1e-5)


def test_jaw_points_take_strength_and_offsets(folder):
    values = np.random.default_rng(9).normal(0, 0.1, (2, 15)).astype(np.float32)
    c = folder.config
    got = jaw_points(values, folder.data.neutral_jaw, c)
    expected = folder.data.neutral_jaw + c.lower_teeth_strength * values.reshape(2, 5, 3) + [0, c.lower_teeth_height_offset, c.lower_teeth_depth_offset]
    assert np.allclose(got, expected, atol=1e-6)


def test_eyes_read_the_saccade_table_at_30_rows_a_second(folder):
    c, table = folder.config, folder.data.saccades
    animator = EyeAnimator(c, table, DT)
    values = np.random.default_rng(10).normal(0, 3, (40, 4)).astype(np.float32)
    angles = np.concatenate([animator.angles(values[:13]), animator.angles(values[13:])])
    live = np.float32(0)
    for k in range(40):
        row = int(np.fmod(np.float32(c.eye_saccade_seed) + live, np.float32(len(table))))
        live = np.float32(np.fmod(live + np.float32(30) * np.float32(DT), np.float32(len(table))))
        assert row == int(7 + 1.2 * k + 1e-4)  # seed 7, 30/25 rows per frame
        saccade = c.saccade_strength * table[row]
        right = [c.right_eye_rot_x_offset + values[k, 0] + saccade[0], c.right_eye_rot_y_offset + values[k, 1] + saccade[1]]
        left = [c.left_eye_rot_x_offset + values[k, 2] + saccade[0], c.left_eye_rot_y_offset + values[k, 3] + saccade[1]]
        assert np.allclose(angles[k], right + left, atol=1e-5)
    channel = eyes_channel(angles)  # left pitch, left yaw, right pitch, right yaw in radians
    assert np.allclose(channel[:, 0], np.radians(angles[:, 2]), atol=1e-6)
    assert np.allclose(channel[:, 3], np.radians(angles[:, 1]), atol=1e-6)


# --- the whole engine -----------------------------------------------------------------------------

def reference_clip(model, folder, samples, explicit, fps=25):
    """Every step of SPEC 5-6 from the plain references above, for a whole clip at ``fps``."""
    info = folder.info
    n = -(-samples.size * fps // 16000)
    windows = np.zeros((n, 8320), np.float32)
    for k in range(n):
        t = k * 16000 // fps
        for i in range(8320):
            j = t - 4160 + i
            if 0 <= j < samples.size:
                windows[k, i] = samples[j] * np.float32(folder.config.input_strength)
    emotions = np.hstack([np.tile(folder.implicit_emotion, (n, 1)), explicit])
    result = model.network(windows, emotions)
    s, t_ = info.num_shapes_skin, info.num_shapes_tongue
    skin = reference_skin(folder, result[:, :s], float(np.float32(1 / fps)))
    tongue = tongue_vertices(result[:, s:s + t_], folder.data, folder.config)
    return n, result, reference_solve(folder.skin, skin), reference_solve(folder.tongue, tongue)


def reference_eyes(folder, values, fps):
    """SPEC 6.5 at ``fps``: (T, 4) right x, y, left x, y in the SDK's degrees."""
    c, table = folder.config, folder.data.saccades
    dt, live, out = np.float32(1 / fps), np.float32(0), []
    for row_values in values:
        row = int(np.fmod(np.float32(c.eye_saccade_seed) + live, np.float32(len(table))))
        live = np.float32(np.fmod(live + np.float32(30) * dt, np.float32(len(table))))
        saccade = c.saccade_strength * table[row]
        out.append([c.right_eye_rot_x_offset + c.eyeballs_strength * row_values[0] + saccade[0],
                    c.right_eye_rot_y_offset + c.eyeballs_strength * row_values[1] + saccade[1],
                    c.left_eye_rot_x_offset + c.eyeballs_strength * row_values[2] + saccade[0],
                    c.left_eye_rot_y_offset + c.eyeballs_strength * row_values[3] + saccade[1]])
    return np.array(out)


@pytest.mark.parametrize("fps, frames", [(25, 18), (30, 21), (60, 42)])  # ceil(11200 * fps / 16000)
def test_engine_clip_matches_the_reference_end_to_end(model, folder, fps, frames):
    samples = speech(0.7)
    emotion = parse_emotion_text("joy=0.7,anger=0.1")
    engine = Audio2FaceEngine(model.root, device="cpu", batch=8)
    request = MotionRequest(audio=samples, chunk_frames=6, options={"emotion": emotion, "fps": fps})
    chunks = list(engine.stream_motion(request))
    n, result, skin, tongue = reference_clip(model, folder, samples, emotion.frames(frames, fps), fps)
    assert sum(c.n_frames for c in chunks) == n == frames
    eyes = np.concatenate([c.eyes for c in chunks])
    degrees = reference_eyes(folder, result[:, 21:25], fps)
    assert np.allclose(eyes, np.radians(degrees[:, [2, 3, 0, 1]]), atol=1e-5)
    arkit = np.concatenate([c.arkit for c in chunks])
    for p, name in enumerate(SKIN_POSES):
        if name.startswith("eyeBlink"):
            assert np.all(arkit[:, ARKIT_52.index(name)] >= skin[:, p] - 1e-5)  # blinks are added on top
        elif name != "eyeLookDownLeft":  # inactive: gaze comes from the eye rotations
            assert np.allclose(arkit[:, ARKIT_52.index(name)], skin[:, p], atol=2e-4), name
    tongue_channel = np.concatenate([c.tongue for c in chunks])
    for p, name in enumerate(TONGUE_POSES):
        assert np.allclose(tongue_channel[:, TONGUE_16.index(name)], tongue[:, p], atol=2e-4)
    jaw = np.concatenate([c.jaw for c in chunks])
    targets = jaw_points(result[:, 6:21], folder.data.neutral_jaw, folder.config)
    assert np.allclose(jaw, rigid_fit(folder.data.neutral_jaw, targets), atol=1e-4)
    emotions = np.concatenate([c.emotion for c in chunks])
    assert emotions[0, EMOTIONS.index("joy")] == pytest.approx(0.7)


def test_fixed_batch_network_gives_the_same_motion(tmp_path, model):
    samples = speech(0.5)
    batched = Audio2FaceEngine(model.root, device="cpu", batch=16)
    fixed_root = tmp_path / "fixed"
    fixed = write_model_folder(fixed_root, fixed_batch=True)
    single = Audio2FaceEngine(fixed.root, device="cpu", batch=16)
    assert single.network.batch == 1 and batched.network.batch == 16
    a = list(batched.stream_motion(MotionRequest(audio=samples)))[0]
    b = list(single.stream_motion(MotionRequest(audio=samples)))[0]
    assert np.allclose(a.arkit, b.arkit, atol=1e-5) and np.allclose(a.jaw, b.jaw, atol=1e-5)


# --- bad files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, name", [
    ("modelDataPath", "../secret/model_data.npz"),
    ("networkInfoPath", "/etc/network_info.json"),
    ("modelConfigPath", "C:\\models\\model_config.json"),
])
def test_model_json_names_only_files_inside_its_folder(tmp_path, key, name):
    """Like a glTF's URIs: a model folder must not make talkbridge read files the user never named."""
    root = write_model_folder(tmp_path / "m").root
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "model_data.npz").write_bytes((root / "model_data.npz").read_bytes())  # readable, and still refused
    data = json.loads((root / "model.json").read_text())
    data[key] = name
    (root / "model.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"key '{key}' names .*outside the model folder") as error:
        load_model_folder(root)
    assert "model.json" in str(error.value)


def test_diffusion_and_emotion_folders_keep_to_their_folder_too(tmp_path):
    from talkbridge.core.audio2face.diffusion_files import load_diffusion_folder
    from tests.audio2face_models import write_diffusion_folder

    root = write_diffusion_folder(tmp_path / "v3")
    data = json.loads((root / "model.json").read_text())
    data["modelDataPaths"][1] = "../model_data_James.npz"
    (root / "model.json").write_text(json.dumps(data))
    assert load_diffusion_folder(root, "Claire").identities["Claire"].name == "Claire"  # only the chosen face is read
    with pytest.raises(CheckpointError, match="key 'modelDataPaths' names '../model_data_James.npz', outside the model folder"):
        load_diffusion_folder(root, "James")


def test_a_linked_file_inside_the_folder_is_followed(tmp_path):
    """Hugging Face's cache links each snapshot file to a blob elsewhere: the names decide, not the links."""
    root = write_model_folder(tmp_path / "m").root
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (root / "model_data.npz").rename(blobs / "0123abcd")
    (root / "model_data.npz").symlink_to(blobs / "0123abcd")
    assert load_model_folder(root).data.neutral_jaw.shape == (5, 3)


def _break(root: Path, name: str, **arrays):
    data = dict(np.load(root / name))
    for key, value in arrays.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    np.savez(root / name, **data)


@pytest.mark.parametrize("damage, file_name, words", [
    (lambda r: (r / "model_data.npz").unlink(), "model_data.npz", "not found"),
    (lambda r: _break(r, "model_data.npz", neutral_jaw=None), "model_data.npz", "'neutral_jaw'"),
    (lambda r: _break(r, "model_data.npz", shapes_mean_skin=np.zeros((7, 3), np.float32)), "model_data.npz", "'shapes_mean_skin'"),
    (lambda r: _break(r, "bs_skin.npz", jawOpen=None), "bs_skin.npz", "'jawOpen'"),
    (lambda r: _break(r, "implicit_emo_db.npz", emo_spec_names=np.array([b"x", b"y"])), "implicit_emo_db.npz", "shot_b"),
    (lambda r: (r / "network.onnx").unlink(), "model.json", "network.onnx"),
    (lambda r: (r / "network_info.json").write_text(json.dumps({"id": {"type": "regression", "output": "geometry"}})),
     "network_info.json", "'params.explicit_emotions'"),
    (lambda r: (r / "bs_tongue_config.json").write_text(json.dumps({"blendshape_params": {"numPoses": 5}})),
     "bs_tongue_config.json", "'numPoses' is 5 but bs_tongue.npz has 3"),
    (lambda r: (r / "bs_tongue_config.json").write_text(json.dumps({"blendshape_params": {"numPoses": 3}})),
     "bs_tongue_config.json", "'bsSolveActivePoses'"),
])
def test_broken_folders_name_the_file_and_the_key(tmp_path, damage, file_name, words):
    root = write_model_folder(tmp_path / "m").root
    damage(root)
    with pytest.raises(CheckpointError) as error:
        Audio2FaceEngine(root, device="cpu")
    assert file_name in str(error.value) and words in str(error.value)


@pytest.mark.parametrize("names, words", [(("audio", "emotion", "result"), "'input'"), (("input", "emotion", "out"), "'result'")])
def test_wrong_tensor_names_are_refused(tmp_path, names, words):
    model = write_model_folder(tmp_path / "m")
    write_onnx(model.root / "network.onnx", model.audio_weights, model.emotion_weights, model.bias, names=names)
    with pytest.raises(CheckpointError) as error:
        Audio2FaceEngine(model.root, device="cpu")
    assert "network.onnx" in str(error.value) and words in str(error.value)


def test_wrong_window_size_is_refused(tmp_path):
    model = write_model_folder(tmp_path / "m", buffer_len=4000, buffer_ofs=2000)
    info = json.loads((model.root / "network_info.json").read_text())
    info["audio_params"]["buffer_len"] = 8320
    (model.root / "network_info.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="input 'input' has shape"):
        Audio2FaceEngine(model.root, device="cpu")


def test_diffusion_folder_is_refused_clearly(tmp_path):
    root = write_model_folder(tmp_path / "m").root
    info = json.loads((root / "network_info.json").read_text())
    info["id"]["type"] = "diffusion"
    (root / "network_info.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="v3.0 diffusion"):
        load_model_folder(root)


def test_gaze_comes_from_the_eye_rotations_where_the_solve_leaves_it_and_says_so(model):
    from talkbridge.core.audio2face.eyes import eye_look_curves

    engine = Audio2FaceEngine(model.root, device="cpu")
    request = MotionRequest(audio=speech(0.4))
    # the synthetic model's inactive eyeLookDownLeft, and every eyeLook* it has no pose for
    assert engine.plan(request).details["arkit_from_eyes"] == sorted(n for n in ARKIT_52 if n.startswith("eyeLook"))
    chunk = next(engine.stream_motion(request))
    for name in ("eyeLookDownLeft", "eyeLookInRight"):
        assert np.allclose(chunk.arkit[:, ARKIT_52.index(name)], eye_look_curves(chunk.eyes)[name])
    assert np.allclose(chunk.arkit[:, ARKIT_52.index("eyeBlinkLeft")] >= chunk.blink - 1e-6, True)

"""Hostile heads: a head from the internet can make talkbridge read nothing but itself and its own folder.

Each case is a small file made here: a .gltf whose URIs try to leave its folder, or a GLB whose
JSON points past its arrays, loops its node tree, declares absurd sizes or requires an unknown
extension. Every one must be refused with a one-line InputError that names the file and the
problem, before any output exists (so nothing from outside can end up embedded in one).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

import pytest

from talkbridge.cli import main
from talkbridge.core.errors import InputError
from talkbridge.exporters.gltf import add_animation, head_document, read_head
from talkbridge.exporters.gltf import safety
from talkbridge.exporters.gltf.glb import encode_glb
from tests.heads import arkit_head, synthetic_motion, write_third_party_head

SECRET = b"TOP-SECRET-bytes-that-must-never-be-embedded" * 4


def export(head: Path, folder: Path) -> Path:
    """Export onto ``head``; returns where the output would be (tests assert it never appears)."""
    out = folder / "exported.glb"
    add_animation(head, synthetic_motion(5), out)
    return out


def refused(head: Path, folder: Path, pattern: str) -> InputError:
    out = folder / "exported.glb"
    with pytest.raises(InputError, match=pattern) as caught:
        export(head, folder)
    assert not out.exists()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(head)), message
    return caught.value


@pytest.fixture()
def layout(tmp_path):
    """``tmp/outside/secret.bin`` and ``tmp/heads/character.gltf`` (+ its .bin and png) beside it."""
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.bin"
    secret.write_bytes(SECRET)
    heads = tmp_path / "heads"
    heads.mkdir()
    gltf = write_third_party_head(heads)
    return {"secret": secret, "gltf": gltf, "content": json.loads(gltf.read_text()), "folder": heads}


def _variant(layout, name: str, edit) -> Path:
    content = json.loads(json.dumps(layout["content"]))
    edit(content)
    path = layout["folder"] / f"{name}.gltf"
    path.write_text(json.dumps(content))
    return path


ESCAPES = {
    "dotdot": ("../outside/secret.bin", r"leads out of the head's folder"),
    "etc_passwd": ("../../../../../../../../etc/passwd", r"leads out of the head's folder"),
    "absolute": ("{secret}", r"absolute path"),
    "root": ("/etc/passwd", r"absolute path"),
    "percent_dotdot": ("%2e%2e/outside/secret.bin", r"leads out of the head's folder"),
    "percent_slash": ("..%2Foutside%2Fsecret.bin", r"leads out of the head's folder"),
    "percent_absolute": ("%2Fetc%2Fpasswd", r"absolute path"),
    "file_scheme": ("file:///etc/passwd", r"only data: URIs and relative paths"),
    "http": ("http://example.com/secret.bin", r"only data: URIs and relative paths"),
    "windows_drive": ("C:/Windows/win.ini", r"absolute path"),
    "backslash": ("..\\outside\\secret.bin", r"backslash"),
}


@pytest.mark.parametrize("kind", ["buffer", "image"])
@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_uris_cannot_leave_the_heads_folder(layout, kind, escape):
    uri, pattern = ESCAPES[escape]
    uri = uri.format(secret=layout["secret"])

    def edit(content):
        (content["buffers"] if kind == "buffer" else content["images"])[0]["uri"] = uri

    head = _variant(layout, f"{kind}_{escape}", edit)
    error = refused(head, layout["folder"], f"{kind} 0 has URI .*{pattern}")
    assert SECRET.decode() not in str(error)
    if kind == "buffer":
        with pytest.raises(InputError, match=pattern):
            read_head(head)


def test_a_symlink_out_of_the_folder_is_refused(layout):
    link = layout["folder"] / "skin_link.png"
    os.symlink(layout["secret"], link)
    head = _variant(layout, "symlinked", lambda c: c["images"][0].__setitem__("uri", "skin_link.png"))
    refused(head, layout["folder"], r"image 0 has URI 'skin_link.png', which resolves outside the head's folder")


def test_files_in_subfolders_and_percent_encoded_names_still_work(layout):
    (layout["folder"] / "textures").mkdir()
    (layout["folder"] / "skin.png").rename(layout["folder"] / "textures" / "skin tone.png")
    head = _variant(layout, "subfolder", lambda c: c["images"][0].__setitem__("uri", "textures/skin%20tone.png"))
    out = export(head, layout["folder"])
    assert out.exists() and SECRET not in out.read_bytes()


def test_data_uris_and_declared_buffers_are_capped(layout, monkeypatch):
    payload = (layout["folder"] / "character.bin").read_bytes()
    inline = "data:application/octet-stream;base64," + base64.b64encode(payload).decode()
    head = _variant(layout, "inline", lambda c: c["buffers"][0].__setitem__("uri", inline))
    assert export(head, layout["folder"]).exists()  # a data URI under the cap is fine
    (layout["folder"] / "exported.glb").unlink()

    monkeypatch.setattr(safety, "MAX_DATA_URI_BYTES", len(payload) - 1)
    refused(head, layout["folder"], rf"buffer 0 has a data URI over the limit of {len(payload) - 1} bytes")
    monkeypatch.undo()

    bad = _variant(layout, "bad_base64", lambda c: c["buffers"][0].__setitem__("uri", "data:;base64,@@@not base64@@@"))
    refused(bad, layout["folder"], r"base64 cannot be decoded")

    huge = _variant(layout, "huge", lambda c: c["buffers"][0].__setitem__("byteLength", 1 << 40))
    refused(huge, layout["folder"], r"/buffers/0 declares 1099511627776 bytes, over talkbridge's limit")

    monkeypatch.setattr(safety, "MAX_HEAD_FILE_BYTES", 100)
    refused(layout["gltf"], layout["folder"], r"over talkbridge's limit of 100 bytes for a head")


# ---------------------------------------------------------------------------------------------
# Malformed GLBs: every index range-checked, the node tree checked, byte ranges checked.

@pytest.fixture()
def glb(tmp_path):
    """A builder of variants of the skinned ARKit head as GLBs: ``glb(name, edit(content))``."""
    document, blob = head_document(arkit_head())
    content = json.loads(document.to_json())

    def build(name: str, edit=None, raw=None) -> Path:
        variant = json.loads(json.dumps(content))
        if edit is not None:
            edit(variant)
        text = json.dumps(variant).encode()
        text += b" " * ((-len(text)) % 4)
        data = blob + b"\0" * ((-len(blob)) % 4)
        body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(data), 0x004E4942) + data
        file_bytes = struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body
        path = tmp_path / f"{name}.glb"
        path.write_bytes(raw(file_bytes) if raw is not None else file_bytes)
        return path

    return build


def _node(content: dict, name: str) -> dict:
    return next(n for n in content["nodes"] if n.get("name") == name)


def _position(content: dict) -> dict:
    return content["meshes"][0]["primitives"][0]["attributes"]


BAD_INDICES = {
    "buffer_view_buffer_7": (lambda c: c["bufferViews"][0].__setitem__("buffer", 7),
                             r"/bufferViews/0/buffer is 7, but the file has 1 buffers"),
    "node_child_9999": (lambda c: _node(c, "neck").__setitem__("children", [2, 9999]),
                        r"/nodes/1/children/1 is 9999, but the file has 3 nodes"),
    "position_accessor_9999": (lambda c: _position(c).__setitem__("POSITION", 9999),
                               r"/meshes/0/primitives/0/attributes/POSITION is 9999, but the file has \d+ accessors"),
    "morph_target_accessor": (lambda c: c["meshes"][0]["primitives"][0]["targets"][2].__setitem__("POSITION", 500),
                              r"/meshes/0/primitives/0/targets/2/POSITION is 500"),
    "node_mesh": (lambda c: c["nodes"][0].__setitem__("mesh", 3), r"/nodes/0/mesh is 3, but the file has 1 meshes"),
    "skin_joint": (lambda c: c["skins"][0]["joints"].append(40), r"/skins/0/joints/2 is 40"),
    "inverse_bind": (lambda c: c["skins"][0].__setitem__("inverseBindMatrices", -1), r"/skins/0/inverseBindMatrices is -1"),
    "scene_node": (lambda c: c["scenes"][0]["nodes"].append(12), r"/scenes/0/nodes/\d is 12"),
    "default_scene": (lambda c: c.__setitem__("scene", 4), r"/scene is 4, but the file has 1 scenes"),
    "material": (lambda c: c["meshes"][0]["primitives"][0].__setitem__("material", 2), r"/material is 2"),
    "string_index": (lambda c: c["nodes"][0].__setitem__("mesh", "0"), r"/nodes/0/mesh is '0', not an index"),
    "float_index": (lambda c: c["nodes"][0].__setitem__("mesh", 0.0), r"/nodes/0/mesh is 0.0, not an index"),
    "bool_index": (lambda c: c["nodes"][0].__setitem__("mesh", True), r"/nodes/0/mesh is True, not an index"),
    "children_not_a_list": (lambda c: _node(c, "neck").__setitem__("children", 2), r"/nodes/1/children must be an array"),
    "no_meshes_array": (lambda c: c.__setitem__("meshes", {"0": {}}), r"/meshes must be an array of objects"),
    "view_past_buffer": (lambda c: c["bufferViews"][1].__setitem__("byteLength", 10**7),
                         r"/bufferViews/1 spans bytes \d+\.\.\d+ of buffer 0, which has \d+"),
    "accessor_past_view": (lambda c: c["accessors"][_position(c)["POSITION"]].__setitem__("count", 10**6),
                           r"/accessors/0 reads bytes 0\.\.\d+ of bufferView 0"),
    "accessor_offset": (lambda c: c["accessors"][0].__setitem__("byteOffset", -4), r"/accessors/0/byteOffset is -4"),
    "component_type": (lambda c: c["accessors"][0].__setitem__("componentType", 5130), r"componentType is 5130"),
    "animation_sampler": (lambda c: c.__setitem__("animations", [{"samplers": [], "channels": [
        {"sampler": 0, "target": {"node": 0, "path": "weights"}}]}]), r"/animations/0/channels/0/sampler is 0, but the file has no"),
}


@pytest.mark.parametrize("case", sorted(BAD_INDICES))
def test_every_index_and_byte_range_is_checked(glb, tmp_path, case):
    edit, pattern = BAD_INDICES[case]
    head = glb(case, edit)
    refused(head, tmp_path, pattern)
    with pytest.raises(InputError, match=pattern):
        read_head(head)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "case, edit, pattern",
    [
        ("cycle", lambda c: _node(c, "head").__setitem__("children", [1]), r"node \d is its own ancestor"),
        ("self_child", lambda c: _node(c, "head").__setitem__("children", [2]), r"/nodes/2 lists itself as a child"),
        ("two_parents", lambda c: c["nodes"][0].__setitem__("children", [2]), r"node 2 is a child of both node 0 and node 1"),
        ("scene_lists_a_child", lambda c: c["scenes"][0]["nodes"].append(2), r"/scenes/0/nodes lists node 2, which is a child of node 1"),
    ],
)
def test_the_node_tree_must_be_a_forest(glb, tmp_path, case, edit, pattern):
    refused(glb(case, edit), tmp_path, pattern)


def test_a_long_cycle_is_found_at_once(glb, tmp_path):
    def edit(content):
        first = len(content["nodes"])
        ring = [{"name": f"n{i}", "children": [first + (i + 1) % 5000]} for i in range(5000)]
        content["nodes"].extend(ring)

    refused(glb("ring", edit), tmp_path, r"is its own ancestor")


@pytest.mark.parametrize(
    "case, raw, pattern",
    [
        ("truncated", lambda b: b[: len(b) // 2], r"truncated GLB file: the header says \d+ bytes, the file has \d+"),
        ("tiny", lambda b: b[:16], r"truncated GLB file"),
        ("chunk_past_end", lambda b: b[:12] + struct.pack("<I", 10**6) + b[16:], r"chunk 0 at byte 12 declares 1000000 bytes"),
        ("bin_first", lambda b: b[:16] + struct.pack("<I", 0x004E4942) + b[20:], r"first chunk is not the JSON chunk"),
        ("no_bin", lambda b: b[:12 + 8 + struct.unpack_from("<I", b, 12)[0]], None),
        ("version_1", lambda b: b[:4] + struct.pack("<I", 1) + b[8:], r"GLB container version 1"),
    ],
)
def test_malformed_glb_containers(glb, tmp_path, case, raw, pattern):
    if case == "no_bin":
        def fix_length(data: bytes) -> bytes:
            data = raw(data)
            return data[:8] + struct.pack("<I", len(data)) + data[12:]

        head = glb(case, raw=fix_length)
        refused(head, tmp_path, r"buffer 0 has no URI, and only buffer 0 of a GLB may use the file's binary chunk")
        return
    refused(glb(case, raw=raw), tmp_path, pattern)


def test_only_buffer_0_may_use_the_bin_chunk(glb, tmp_path):
    head = glb("second_bufferless", lambda c: c["buffers"].append({"byteLength": 4}))
    refused(head, tmp_path, r"buffer 1 has no URI, and only buffer 0")


def test_an_unknown_required_extension_is_refused(glb, tmp_path):
    def edit(content):
        content["extensionsUsed"] = ["KHR_texture_transform", "EXT_evil_geometry"]
        content["extensionsRequired"] = ["KHR_texture_transform", "EXT_evil_geometry"]

    refused(glb("required", edit), tmp_path, r"requires the glTF extension\(s\) EXT_evil_geometry \(extensionsRequired\)")
    used_only = glb("used_only", lambda c: c.__setitem__("extensionsUsed", ["EXT_evil_geometry"]))
    assert export(used_only, tmp_path).exists()  # an optional extension is carried through


def test_deeply_nested_json_is_refused(tmp_path):
    head = tmp_path / "nested.gltf"
    head.write_text('{"asset": {"version": "2.0"}, "extras": ' + "[" * 100000 + "]" * 100000 + "}")
    refused(head, tmp_path, r"nested too deeply")


def test_the_cli_reports_a_hostile_head_in_one_line(layout, tmp_path, caplog):
    from talkbridge.exporters.motion_file import save_motion

    head = _variant(layout, "cli_escape", lambda c: c["buffers"][0].__setitem__("uri", "../outside/secret.bin"))
    motion = save_motion(synthetic_motion(5), tmp_path / "clip.motion.npz")
    code = main(["export", str(motion), "--head", str(head), "-o", str(tmp_path / "cli.glb")])
    assert code != 0 and not (tmp_path / "cli.glb").exists()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert errors[0].getMessage() == f"{head}: buffer 0 has URI '../outside/secret.bin', which leads out of the head's folder ('..')"


_JUNK = [-1, 0, 1, 2, 9999, 1.5, "x", True, [], {}, [1], [0, 0, 0], 2**40]


def _json_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):
            yield from _json_paths(item, path + (index,))


def test_random_corruptions_give_input_errors_never_tracebacks(glb, tmp_path):
    """Seeded single-value corruptions of a valid head: each one exports, or is an InputError."""
    import random

    document, _ = head_document(arkit_head())
    content = json.loads(document.to_json())
    paths = [p for p in _json_paths(content) if p]
    rng = random.Random(21)
    outcomes = {"exported": 0, "refused": 0}
    for trial in range(120):
        path, junk = rng.choice(paths), rng.choice(_JUNK)

        def edit(variant, path=path, junk=junk):
            owner = variant
            for key in path[:-1]:
                owner = owner[key]
            owner[path[-1]] = json.loads(json.dumps(junk))

        head = glb(f"fuzz{trial}", edit)
        try:
            add_animation(head, synthetic_motion(3), tmp_path / "fuzz_out.glb", overwrite=True)
            read_head(head)
            outcomes["exported"] += 1
        except InputError as error:
            assert "\n" not in str(error) and str(head) in str(error), (path, junk, error)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 30 and outcomes["exported"] > 5, outcomes

"""Compressed heads (EXT_meshopt_compression, KHR_draco_mesh_compression) keep their geometry as it was.

The compressed copies are made by glTF-Transform (npm, tools/node) from two test heads: the skinned
ARKit head and the multi-mesh third-party head (face + teeth sharing a name, a texture, a user
animation). Each is animated; the outputs are checked by the Khronos validator, byte-compared with
the input's compressed streams, read back through the codecs' own libraries, and (Draco) imported
by Blender 4.5's glTF importer.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from talkbridge.core.errors import InputError
from talkbridge.exporters.gltf import ExportOptions, add_animation, read_head, write_head_glb
from tests.heads import arkit_head, synthetic_motion, write_third_party_head
from tests.test_export_validation import run_blender, run_validator

ROOT = Path(__file__).resolve().parents[1]
GLTF_TRANSFORM = ROOT / "tools" / "node" / "node_modules" / "@gltf-transform" / "cli" / "bin" / "cli.js"
FRAMES = 20
CODECS = ("draco", "meshopt")
SOURCES = ("arkit", "third_party")


def gltf_transform(*args: str) -> None:
    """Run glTF-Transform's CLI (the npm package in tools/node)."""
    if not GLTF_TRANSFORM.is_file():
        pytest.fail(f"@gltf-transform/cli is not installed at {GLTF_TRANSFORM}; run ./scripts/dev setup")
    result = subprocess.run(["node", str(GLTF_TRANSFORM), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def glb_parts(path: Path) -> tuple[dict, bytes]:
    """The raw JSON (as written, not through pygltflib) and the BIN chunk of a GLB."""
    raw = path.read_bytes()
    json_length = struct.unpack_from("<I", raw, 12)[0]
    content = json.loads(raw[20 : 20 + json_length])
    blob = raw[20 + json_length + 8 :]
    return content, blob


def write_glb_parts(path: Path, content: dict, blob: bytes) -> Path:
    text = json.dumps(content).encode()
    text += b" " * ((-len(text)) % 4)
    blob += b"\0" * ((-len(blob)) % 4)
    header = struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(blob))
    path.write_bytes(header + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob)
    return path


def stream_ranges(content: dict) -> dict[str, tuple[int, int]]:
    """Where each compressed stream lies in buffer 0, keyed by what owns it (view index or mesh/primitive)."""
    ranges: dict[str, tuple[int, int]] = {}
    for index, view in enumerate(content.get("bufferViews", [])):
        ext = view.get("extensions", {}).get("EXT_meshopt_compression")
        if ext is not None:
            assert ext["buffer"] == 0
            ranges[f"view{index}"] = (ext.get("byteOffset", 0), ext["byteLength"])
    for m, mesh in enumerate(content.get("meshes", [])):
        for p, primitive in enumerate(mesh["primitives"]):
            ext = primitive.get("extensions", {}).get("KHR_draco_mesh_compression")
            if ext is not None:
                view = content["bufferViews"][ext["bufferView"]]
                assert view["buffer"] == 0
                ranges[f"mesh{m}/{p}"] = (view.get("byteOffset", 0), view["byteLength"])
    return ranges


def compressed_streams(content: dict, blob: bytes) -> dict[str, bytes]:
    """Every compressed stream's bytes, keyed as :func:`stream_ranges` keys them."""
    return {key: blob[start : start + length] for key, (start, length) in stream_ranges(content).items()}


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compressed")
    sources = {"arkit": write_head_glb(arkit_head(), folder / "arkit.glb"), "third_party": write_third_party_head(folder)}
    motion = synthetic_motion(FRAMES)
    out = {}
    for source, path in sources.items():
        for codec in CODECS:
            compressed = folder / f"{source}_{codec}.glb"
            gltf_transform(codec, str(path), str(compressed))
            animated = folder / f"{source}_{codec}_animated.glb"
            result = add_animation(compressed, motion, animated, ExportOptions(pose_reference="first"))
            out[(source, codec)] = {"source": path, "compressed": compressed, "out": animated, "result": result}
    validation = run_validator([entry[key] for entry in out.values() for key in ("compressed", "out")])
    return {"heads": out, "validation": validation, "motion": motion, "folder": folder}


CASES = [(source, codec) for source in SOURCES for codec in CODECS]


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_output_is_valid_gltf_with_the_streams_untouched(heads, case):
    entry = heads["heads"][case]
    report = heads["validation"][str(entry["out"])]
    before = heads["validation"][str(entry["compressed"])]
    assert report["errors"] == 0, report["messages"]
    assert report["warnings"] <= before["warnings"], report["messages"]

    content_in, blob_in = glb_parts(entry["compressed"])
    content_out, blob_out = glb_parts(entry["out"])
    streams_in = compressed_streams(content_in, blob_in)
    assert streams_in, "glTF-Transform compressed nothing"
    assert compressed_streams(content_out, blob_out) == streams_in
    extension = {"draco": "KHR_draco_mesh_compression", "meshopt": "EXT_meshopt_compression"}[case[1]]
    assert extension in content_out["extensionsRequired"] and extension in content_out["extensionsUsed"]
    # The extensions' own rules: Draco accessors have neither bufferView nor byteOffset; meshopt
    # fallback buffers keep their flag and length and still carry no bytes.
    for index, accessor in enumerate(content_in["accessors"]):
        if "bufferView" not in accessor:
            assert "bufferView" not in content_out["accessors"][index] and "byteOffset" not in content_out["accessors"][index]
    fallbacks_in = [b for b in content_in["buffers"] if b.get("extensions", {}).get("EXT_meshopt_compression", {}).get("fallback")]
    fallbacks_out = [b for b in content_out["buffers"] if b.get("extensions", {}).get("EXT_meshopt_compression", {}).get("fallback")]
    assert [b["byteLength"] for b in fallbacks_out] == [b["byteLength"] for b in fallbacks_in]
    assert all("uri" not in b for b in fallbacks_out)
    assert (case[1] == "meshopt") == bool(fallbacks_out)


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_animation_is_added_as_plain_accessors(heads, case):
    entry = heads["heads"][case]
    content, blob = glb_parts(entry["out"])
    ours = next(a for a in content["animations"] if a["name"] == "talkbridge")
    channels = {(c["target"]["node"], c["target"]["path"]) for c in ours["channels"]}
    mesh_nodes = {i for i, node in enumerate(content["nodes"]) if "mesh" in node
                  and content["meshes"][node["mesh"]].get("extras", {}).get("targetNames")}
    assert {(node, "weights") for node in mesh_nodes} <= channels  # every morph mesh, teeth included
    motion = heads["motion"]
    for sampler in ours["samplers"]:
        for accessor_index in (sampler["input"], sampler["output"]):
            accessor = content["accessors"][accessor_index]
            view = content["bufferViews"][accessor["bufferView"]]
            assert view["buffer"] == 0 and "extensions" not in view
        times = content["accessors"][sampler["input"]]
        assert times["count"] == FRAMES and times["max"] == [pytest.approx((FRAMES - 1) / motion.fps)]
    if case[0] == "third_party":
        assert {"Idle", "talkbridge"} <= {a["name"] for a in content["animations"]}


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_compressed_geometry_reads_back_through_the_codec_libraries(heads, case):
    entry = heads["heads"][case]
    if case[0] == "arkit" and case[1] == "meshopt":
        # glTF-Transform quantizes a skinned mesh into its inverse bind matrices, which read_head
        # (a rest-pose reader) does not apply: compare names and counts only.
        original, decoded = read_head(entry["source"]), read_head(entry["out"])
        assert sorted(decoded.morph_targets) == sorted(original.morph_targets)
        assert decoded.positions.shape == original.positions.shape
        return
    original, decoded = read_head(entry["source"]), read_head(entry["out"])
    assert sorted(decoded.morph_targets) == sorted(original.morph_targets)
    assert decoded.positions.shape == original.positions.shape and decoded.indices.shape == original.indices.shape
    # Codecs may reorder vertices: pair each decoded vertex with the original nearest to it.
    distance = np.linalg.norm(decoded.positions[:, None] - original.positions[None], axis=2)
    nearest = distance.argmin(axis=1)
    assert len(set(nearest)) == len(original.positions)
    size = np.ptp(original.positions, axis=0).max()
    assert distance.min(axis=1).max() < 1e-3 * size
    for name, delta in original.morph_targets.items():
        np.testing.assert_allclose(decoded.morph_targets[name], delta[nearest], atol=1e-3 * size, err_msg=name)


def test_reexport_onto_a_compressed_output_replaces_only_our_animation(heads, tmp_path):
    entry = heads["heads"][("third_party", "meshopt")]
    again = tmp_path / "again.glb"
    add_animation(entry["out"], synthetic_motion(FRAMES // 2), again)
    content, blob = glb_parts(again)
    assert [a["name"] for a in content["animations"]].count("talkbridge") == 1
    assert compressed_streams(content, blob) == compressed_streams(*glb_parts(entry["compressed"]))
    assert run_validator([again])[str(again)]["errors"] == 0


@pytest.mark.blender
def test_blender_imports_the_draco_output(heads):
    cases = [heads["heads"][(source, "draco")] for source in SOURCES]
    specs = [{"path": str(e["out"]), "animation": "talkbridge", "bone": None, "object": None, "frames": [0, 7]} for e in cases]
    probe = run_blender(specs)
    motion = heads["motion"]
    from talkbridge.exporters.naming import motion_channels

    channels = motion_channels(motion)
    for entry in cases:
        info = probe[str(entry["out"])]
        curves = {name: curve for mesh in info["meshes"].values() for name, curve in mesh["curves"].items()}
        shape_keys = {key for mesh in info["meshes"].values() for key in mesh["shape_keys"]}
        for match in entry["result"].report.matches:
            assert match.target in shape_keys
            assert curves[match.target]["keys"] == FRAMES
            want = [channels[match.channel][f] * match.scale for f in (0, 7)]
            assert curves[match.target]["values"] == pytest.approx(want, abs=1e-4), match.target


def _corrupt_first_stream(source: Path, target: Path) -> None:
    """Copy ``source`` with its first compressed stream scrambled (its JSON left as it was)."""
    content, blob = glb_parts(source)
    start, length = next(iter(stream_ranges(content).values()))
    garbage = b"\xff" * 4 + bytes((b * 7 + 13) & 0xFF for b in blob[start + 4 : start + length])
    write_glb_parts(target, content, blob[:start] + garbage + blob[start + length :])


@pytest.mark.parametrize("codec", CODECS)
def test_a_broken_stream_is_a_clear_error(heads, tmp_path, codec):
    broken = tmp_path / f"broken_{codec}.glb"
    _corrupt_first_stream(heads["heads"][("third_party", codec)]["compressed"], broken)
    extension = {"draco": "KHR_draco_mesh_compression", "meshopt": "EXT_meshopt_compression"}[codec]
    with pytest.raises(InputError, match=rf"broken_{codec}\.glb: bufferView \d+: the {extension} stream does not decode"):
        add_animation(broken, synthetic_motion(5), tmp_path / "out.glb")
    assert not (tmp_path / "out.glb").exists()

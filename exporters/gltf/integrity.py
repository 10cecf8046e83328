"""Structural checks on a head's glTF JSON before any of it is used.

The exporter and the reader follow indices (node -> mesh -> accessor -> bufferView -> buffer) and
walk the node tree. A hostile or broken file can point an index past the end of its array, make a
node its own ancestor, or declare byte ranges outside its buffers; without these checks that shows
up as an IndexError traceback deep in numpy, or a walk that never ends. Here each reference is
range-checked once, on the raw JSON, and the node graph is proven to be a forest, each problem
reported in one line that names the file and the JSON pointer of the bad value.

Also here: the list of extensions talkbridge can carry through untouched, since a file that
*requires* an extension we do not know cannot be rewritten safely.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from talkbridge.core.errors import InputError
from talkbridge.exporters.gltf import safety

# Extensions whose data we leave exactly as it is and that do not depend on anything we add or
# change (an animation, a pivot node, images moved into the GLB buffer). A file may require these.
SUPPORTED_REQUIRED_EXTENSIONS = frozenset(
    {
        "KHR_draco_mesh_compression",
        "EXT_meshopt_compression",
        "KHR_mesh_quantization",
        "KHR_texture_transform",
        "KHR_texture_basisu",
        "EXT_texture_webp",
        "EXT_texture_avif",
        "KHR_materials_unlit",
        "KHR_materials_emissive_strength",
        "KHR_materials_ior",
        "KHR_materials_specular",
        "KHR_materials_transmission",
        "KHR_materials_volume",
        "KHR_materials_clearcoat",
        "KHR_materials_sheen",
        "KHR_materials_iridescence",
        "KHR_materials_anisotropy",
        "KHR_materials_dispersion",
        "KHR_materials_pbrSpecularGlossiness",
        "KHR_materials_variants",
        "KHR_lights_punctual",
        "EXT_mesh_gpu_instancing",
        # VRM avatars: they name nodes and morph targets by index, and we only ever append nodes.
        "VRM",
        "VRMC_vrm",
        "VRMC_springBone",
        "VRMC_node_constraint",
        "VRMC_materials_mtoon",
    }
)

COMPONENT_SIZES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

# (collection, path inside each item, collection the value indexes). Path steps: "key" a member,
# "key[]" each element of a list member, "*" each value of the object reached so far.
_REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("scenes", "nodes[]", "nodes"),
    ("nodes", "children[]", "nodes"),
    ("nodes", "mesh", "meshes"),
    ("nodes", "skin", "skins"),
    ("nodes", "camera", "cameras"),
    ("skins", "joints[]", "nodes"),
    ("skins", "skeleton", "nodes"),
    ("skins", "inverseBindMatrices", "accessors"),
    ("meshes", "primitives[].attributes.*", "accessors"),
    ("meshes", "primitives[].indices", "accessors"),
    ("meshes", "primitives[].material", "materials"),
    ("meshes", "primitives[].targets[].*", "accessors"),
    ("meshes", "primitives[].extensions.KHR_draco_mesh_compression.bufferView", "bufferViews"),
    ("accessors", "bufferView", "bufferViews"),
    ("accessors", "sparse.indices.bufferView", "bufferViews"),
    ("accessors", "sparse.values.bufferView", "bufferViews"),
    ("bufferViews", "buffer", "buffers"),
    ("bufferViews", "extensions.EXT_meshopt_compression.buffer", "buffers"),
    ("images", "bufferView", "bufferViews"),
    ("textures", "source", "images"),
    ("textures", "sampler", "samplers"),
    ("materials", "pbrMetallicRoughness.baseColorTexture.index", "textures"),
    ("materials", "pbrMetallicRoughness.metallicRoughnessTexture.index", "textures"),
    ("materials", "normalTexture.index", "textures"),
    ("materials", "occlusionTexture.index", "textures"),
    ("materials", "emissiveTexture.index", "textures"),
    ("animations", "samplers[].input", "accessors"),
    ("animations", "samplers[].output", "accessors"),
    ("animations", "channels[].target.node", "nodes"),
)


def _walk(value: Any, steps: list[str], pointer: str) -> Iterator[tuple[str, Any]]:
    """Every value at ``steps`` below ``value``, with its JSON pointer; absent members yield nothing."""
    if not steps:
        yield pointer, value
        return
    step, rest = steps[0], steps[1:]
    if step == "*":
        if not isinstance(value, dict):
            raise _Bad(f"{pointer} must be an object")
        for name, item in value.items():
            yield from _walk(item, rest, f"{pointer}/{name}")
        return
    key = step.removesuffix("[]")
    if not isinstance(value, dict) or key not in value:
        return
    member = value[key]
    where = f"{pointer}/{key}"
    if step.endswith("[]"):
        if not isinstance(member, list):
            raise _Bad(f"{where} must be an array")
        for index, item in enumerate(member):
            yield from _walk(item, rest, f"{where}/{index}")
    else:
        yield from _walk(member, rest, where)


class _Bad(Exception):
    """A structural problem, turned into an InputError naming the file by :func:`check_document`."""


def _show(value: Any) -> str:
    """A bad value for an error line, cut short (a hostile file may put megabytes in one)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _collection(content: dict, name: str) -> list:
    items = content.get(name, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise _Bad(f"/{name} must be an array of objects")
    return items


def _check_references(content: dict) -> None:
    sizes = {name: len(_collection(content, name)) for name in {c for ref in _REFERENCES for c in (ref[0], ref[2])}}
    if "scene" in content:
        _check_index(content["scene"], sizes["scenes"], "/scene", "scenes")
    for collection, path, target in _REFERENCES:
        for position, item in enumerate(content.get(collection, [])):
            for pointer, value in _walk(item, path.split("."), f"/{collection}/{position}"):
                _check_index(value, sizes[target], pointer, target)
    for position, animation in enumerate(content.get("animations", [])):
        samplers = animation.get("samplers", [])
        for pointer, value in _walk(animation, ["channels[]", "sampler"], f"/animations/{position}"):
            _check_index(value, len(samplers) if isinstance(samplers, list) else 0, pointer, "this animation's samplers")


def _check_index(value: Any, size: int, pointer: str, target: str) -> None:
    if not _is_index(value):
        raise _Bad(f"{pointer} is {_show(value)}, not an index")
    if not 0 <= value < size:
        raise _Bad(f"{pointer} is {value}, but the file has {size} {target} (valid: 0..{size - 1})" if size else
                   f"{pointer} is {value}, but the file has no {target}")


def _check_node_forest(content: dict) -> None:
    """Each node has at most one parent and no node is its own ancestor; scenes list only roots."""
    nodes = content.get("nodes", [])
    parent = [-1] * len(nodes)
    for index, node in enumerate(nodes):
        for child in node.get("children", []):
            if child == index:
                raise _Bad(f"/nodes/{index} lists itself as a child (a cycle in the node tree)")
            if parent[child] >= 0:
                raise _Bad(f"node {child} is a child of both node {parent[child]} and node {index}")
            parent[child] = index
    # With one parent each, a cycle is a parent chain that comes back to where it started; every
    # chain is followed once (state: 0 unseen, 1 on the current chain, 2 known to reach a root).
    state = [0] * len(nodes)
    for start in range(len(nodes)):
        chain = []
        index = start
        while index >= 0 and state[index] == 0:
            state[index] = 1
            chain.append(index)
            index = parent[index]
        if index >= 0 and state[index] == 1:
            raise _Bad(f"node {index} is its own ancestor (a cycle in the node tree through nodes {sorted(chain)[:10]})")
        for item in chain:
            state[item] = 2
    for position, scene in enumerate(content.get("scenes", [])):
        for root in scene.get("nodes", []):
            if parent[root] >= 0:
                raise _Bad(f"/scenes/{position}/nodes lists node {root}, which is a child of node {parent[root]}")


def _non_negative(item: dict, key: str, pointer: str, default: int | None = None) -> int:
    value = item.get(key, default)
    if not _is_index(value) or value < 0:
        raise _Bad(f"{pointer}/{key} is {_show(value)}, not a non-negative integer")
    return value


def _check_byte_ranges(content: dict) -> None:
    """Views inside their buffers, accessors inside their views, declared sizes under the cap."""
    buffers = content.get("buffers", [])
    lengths = []
    for index, buffer in enumerate(buffers):
        length = _non_negative(buffer, "byteLength", f"/buffers/{index}")
        if length > safety.MAX_BUFFER_BYTES:
            raise _Bad(f"/buffers/{index} declares {length} bytes, over talkbridge's limit of {safety.MAX_BUFFER_BYTES}")
        lengths.append(length)
    views = content.get("bufferViews", [])
    for index, view in enumerate(views):
        pointer = f"/bufferViews/{index}"
        start = _non_negative(view, "byteOffset", pointer, 0)
        length = _non_negative(view, "byteLength", pointer)
        if start + length > lengths[view["buffer"]]:
            raise _Bad(f"{pointer} spans bytes {start}..{start + length} of buffer {view['buffer']}, "
                       f"which has {lengths[view['buffer']]}")
        stride = view.get("byteStride")
        if stride is not None and (not _is_index(stride) or not 4 <= stride <= 252):
            raise _Bad(f"{pointer}/byteStride is {_show(stride)}; glTF allows 4..252")
        meshopt = view.get("extensions", {}).get("EXT_meshopt_compression")
        if meshopt is not None:
            where = f"{pointer}/extensions/EXT_meshopt_compression"
            for member in ("buffer", "byteLength", "byteStride", "count", "mode"):
                if member not in meshopt:
                    raise _Bad(f"{where} has no '{member}', which EXT_meshopt_compression requires")
            if meshopt["mode"] not in ("ATTRIBUTES", "TRIANGLES", "INDICES") or meshopt.get("filter", "NONE") not in (
                "NONE", "OCTAHEDRAL", "QUATERNION", "EXPONENTIAL"
            ):
                raise _Bad(f"{where} has mode {_show(meshopt['mode'])} / filter {_show(meshopt.get('filter'))}, "
                           "which EXT_meshopt_compression does not define")
            source_start = _non_negative(meshopt, "byteOffset", where, 0)
            source_length = _non_negative(meshopt, "byteLength", where)
            if source_start + source_length > lengths[meshopt["buffer"]]:
                raise _Bad(f"{where} spans bytes {source_start}..{source_start + source_length} of buffer "
                           f"{meshopt['buffer']}, which has {lengths[meshopt['buffer']]}")
            count = _non_negative(meshopt, "count", where)
            element = _non_negative(meshopt, "byteStride", where)
            if count * element > length:
                raise _Bad(f"{where} decodes to {count} x {element} bytes, more than the view's {length}")
    accessors = content.get("accessors", [])
    for index, accessor in enumerate(accessors):
        _check_accessor(accessor, f"/accessors/{index}", views)
    _check_vertex_counts(content, accessors)


def _check_vertex_counts(content: dict, accessors: list) -> None:
    """A primitive's attributes and morph targets all have one element per vertex; POSITIONs are VEC3."""
    for index, mesh in enumerate(content.get("meshes", [])):
        for position, primitive in enumerate(mesh["primitives"]):
            pointer = f"/meshes/{index}/primitives/{position}"
            named = [(f"{pointer}/attributes/{name}", value) for name, value in primitive["attributes"].items()]
            for target_index, target in enumerate(primitive.get("targets", [])):
                named += [(f"{pointer}/targets/{target_index}/{name}", value) for name, value in target.items()]
            counts = {accessors[value]["count"] for _, value in named}
            if len(counts) > 1:
                raise _Bad(f"{pointer}: its attributes and morph targets have different counts {sorted(counts)}")
            indices = primitive.get("indices")
            if indices is not None and (accessors[indices]["type"] != "SCALAR" or accessors[indices]["componentType"] not in (5121, 5123, 5125)):
                raise _Bad(f"{pointer}/indices is accessor {indices}, which is not a SCALAR of unsigned integers")
            for where, value in named:
                if where.endswith(("/POSITION", "/NORMAL")) and accessors[value]["type"] != "VEC3":
                    raise _Bad(f"{where} is accessor {value} of type {accessors[value]['type']}; glTF requires VEC3")


def _check_accessor(accessor: dict, pointer: str, views: list) -> None:
    component = accessor.get("componentType")
    if not _is_index(component) or component not in COMPONENT_SIZES:
        raise _Bad(f"{pointer}/componentType is {_show(component)}, not a glTF component type")
    kind = accessor.get("type")
    if not isinstance(kind, str) or kind not in TYPE_WIDTHS:
        raise _Bad(f"{pointer}/type is {_show(kind)}, not a glTF accessor type")
    count = _non_negative(accessor, "count", pointer)
    if count < 1:
        raise _Bad(f"{pointer}/count is 0; glTF accessors have at least one element")
    for bound in ("min", "max"):
        if bound in accessor:
            _numbers(accessor[bound], TYPE_WIDTHS[kind], f"{pointer}/{bound}")
    element = COMPONENT_SIZES[component] * TYPE_WIDTHS[kind]
    if "bufferView" in accessor:
        _check_in_view(views, accessor["bufferView"], _non_negative(accessor, "byteOffset", pointer, 0), count, element, pointer)
    sparse = accessor.get("sparse")
    if isinstance(sparse, dict):
        where = f"{pointer}/sparse"
        sparse_count = _non_negative(sparse, "count", where)
        if not 1 <= sparse_count <= count:
            raise _Bad(f"{where}/count is {sparse_count}, not 1..{count}")
        indices, values = sparse.get("indices"), sparse.get("values")
        if not isinstance(indices, dict) or not isinstance(values, dict) or "bufferView" not in indices or "bufferView" not in values:
            raise _Bad(f"{where} needs indices and values with a bufferView each")
        if indices.get("componentType") not in (5121, 5123, 5125):
            raise _Bad(f"{where}/indices/componentType is {_show(indices.get('componentType'))}, not an unsigned integer type")
        _check_in_view(views, indices["bufferView"], _non_negative(indices, "byteOffset", f"{where}/indices", 0),
                       sparse_count, COMPONENT_SIZES[indices["componentType"]], f"{where}/indices")
        _check_in_view(views, values["bufferView"], _non_negative(values, "byteOffset", f"{where}/values", 0),
                       sparse_count, element, f"{where}/values")


def _check_in_view(views: list, view_index: int, offset: int, count: int, element: int, pointer: str) -> None:
    view = views[view_index]
    stride = view.get("byteStride") or element
    end = offset + stride * (count - 1) + element
    if end > view["byteLength"]:
        raise _Bad(f"{pointer} reads bytes {offset}..{end} of bufferView {view_index}, which has {view['byteLength']}")


# Members that glTF requires and that we follow without looking first.
_REQUIRED_MEMBERS = {
    "buffers": ("byteLength",),
    "bufferViews": ("buffer", "byteLength"),
    "accessors": ("componentType", "count", "type"),
    "meshes": ("primitives",),
    "skins": ("joints",),
    "animations": ("channels", "samplers"),
}
_NODE_VECTORS = {"translation": 3, "rotation": 4, "scale": 3, "matrix": 16}


def _numbers(value: Any, length: int | None, pointer: str) -> None:
    if not isinstance(value, list) or (length is not None and len(value) != length) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf") for v in value
    ):
        raise _Bad(f"{pointer} must be {'an array' if length is None else f'{length} numbers'} of finite numbers")


def _check_members(content: dict) -> None:
    """Required members present; node transforms, mesh weights and primitives shaped as glTF says."""
    for collection, members in _REQUIRED_MEMBERS.items():
        for index, item in enumerate(_collection(content, collection)):
            for member in members:
                if member not in item:
                    raise _Bad(f"/{collection}/{index} has no '{member}', which glTF requires")
    for index, node in enumerate(_collection(content, "nodes")):
        for member, length in _NODE_VECTORS.items():
            if member in node:
                _numbers(node[member], length, f"/nodes/{index}/{member}")
        if "weights" in node:
            _numbers(node["weights"], None, f"/nodes/{index}/weights")
    for index, mesh in enumerate(_collection(content, "meshes")):
        primitives = mesh["primitives"]
        if not isinstance(primitives, list) or not primitives or not all(isinstance(p, dict) for p in primitives):
            raise _Bad(f"/meshes/{index}/primitives must be a non-empty array of objects")
        for position, primitive in enumerate(primitives):
            if not isinstance(primitive.get("attributes"), dict) or not primitive["attributes"]:
                raise _Bad(f"/meshes/{index}/primitives/{position} has no 'attributes', which glTF requires")
            targets = primitive.get("targets", [])
            if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
                raise _Bad(f"/meshes/{index}/primitives/{position}/targets must be an array of objects")
        if "weights" in mesh:
            _numbers(mesh["weights"], None, f"/meshes/{index}/weights")
    for index, animation in enumerate(_collection(content, "animations")):
        for position, sampler in enumerate(animation["samplers"] if isinstance(animation["samplers"], list) else []):
            if not isinstance(sampler, dict) or "input" not in sampler or "output" not in sampler:
                raise _Bad(f"/animations/{index}/samplers/{position} needs 'input' and 'output'")
        for position, channel in enumerate(animation["channels"] if isinstance(animation["channels"], list) else []):
            if not isinstance(channel, dict) or "sampler" not in channel or not isinstance(channel.get("target"), dict):
                raise _Bad(f"/animations/{index}/channels/{position} needs 'sampler' and a 'target' object")


def _check_extension_objects(content: dict) -> None:
    """Every ``extensions`` member anywhere is an object of objects (we look inside some of them)."""
    stack: list[tuple[Any, str]] = [(content, "")]
    while stack:
        value, pointer = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "extensions" and (not isinstance(item, dict) or not all(isinstance(v, dict) for v in item.values())):
                    raise _Bad(f"{pointer}/extensions must be an object whose members are objects")
                if key != "extras":
                    stack.append((item, f"{pointer}/{key}"))
        elif isinstance(value, list):
            stack.extend((item, f"{pointer}/{index}") for index, item in enumerate(value))
    for index, mesh in enumerate(content.get("meshes", [])):
        for position, primitive in enumerate(mesh["primitives"]):
            draco = primitive.get("extensions", {}).get("KHR_draco_mesh_compression")
            if draco is None:
                continue
            where = f"/meshes/{index}/primitives/{position}/extensions/KHR_draco_mesh_compression"
            attributes = draco.get("attributes")
            if "bufferView" not in draco or not isinstance(attributes, dict):
                raise _Bad(f"{where} needs a 'bufferView' and an 'attributes' object")
            for name, unique_id in attributes.items():
                if not _is_index(unique_id) or unique_id < 0 or name not in primitive["attributes"]:
                    raise _Bad(f"{where}/attributes/{name} is {_show(unique_id)}: not an attribute id of one of the primitive's attributes")


def _check_extensions(content: dict) -> None:
    used = content.get("extensionsUsed", [])
    required = content.get("extensionsRequired", [])
    for key, names in (("extensionsUsed", used), ("extensionsRequired", required)):
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise _Bad(f"/{key} must be an array of strings")
    unknown = sorted(set(required) - SUPPORTED_REQUIRED_EXTENSIONS)
    if unknown:
        raise _Bad(
            f"the head requires the glTF extension(s) {', '.join(unknown)} (extensionsRequired), which talkbridge "
            "cannot carry through safely; export the head without them"
        )


def check_document(content: dict, path: Path) -> None:
    """Refuse ``content`` (a head's parsed glTF JSON) unless every index, byte range and the node tree are sound."""
    try:
        _check_extensions(content)
        _check_members(content)
        _check_extension_objects(content)
        _check_references(content)
        _check_node_forest(content)
        _check_byte_ranges(content)
    except _Bad as problem:
        message = str(problem)  # member names come from the file too: keep the line a line
        raise InputError(message if len(message) <= 400 else message[:397] + "...", path) from None

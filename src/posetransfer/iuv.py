"""DensePose-style IUV from the Anny body: 24 parts, per-part UV charts, IUV images, texture atlas.

Part numbering follows DensePose (its ``DensePose-COCO`` data format; the fine segmentation ``I``):
0 background, 1 torso back, 2 torso front, 3 right hand, 4 left hand, 5 left foot, 6 right foot,
7/9 upper leg right back/front, 8/10 upper leg left back/front, 11/13 lower leg right back/front,
12/14 lower leg left back/front, 15/17 upper arm left front/back, 16/18 upper arm right front/back,
19/21 lower arm left front/back, 20/22 lower arm right front/back, 23 head right, 24 head left.
"Left" and "right" are the subject's (Anny's ``.L`` bones, +X). DensePose's own documents name the
pairs but not which member is the front; the torso (1 back, 2 front), legs (first of each pair the
back) and head (23 right, 24 left) follow the community tables that agree with each other. For the
arms those tables disagree; we follow the ones that call 15/16 and 19/20 the inner (front, palm side
in anatomical position) half, like pupil-labs' DensePose module, and 17/18 and 21/22 the outer half.

How faces get their part (:func:`build_charts`, once per topology, from the rest pose of a neutral
Anny, so it is the same for every subject):

1. Each vertex's skinning weights are summed per body segment (torso, head, upper/lower arm, hand,
   upper/lower leg, foot, with sides); a face goes to the segment its three vertices are most
   skinned to.
2. Hands and feet snap to Anny's (MakeHuman's) texture islands: the island holding most of a hand
   segment's faces becomes that hand, whole; segment faces outside it go to their next segment.
   The islands end at the wrist and ankle, so the boundaries are clean.
3. Torso and limb faces split front/back by the side of the segment's bone axis the face centroid
   lies on, relative to the body's forward direction (-Y in Anny's frame); head faces split
   right/left by the sign of X (the subject's right is -X).

Charts (``face_uv``, per face corner, in [0, 1]^2, each part filling [0.02, 0.98]^2), drawn like
DensePose's texture atlas (x = U, y = 1 - V) each looks like the surface seen from outside, not
mirrored, the part's upper end (neck, shoulder, hip, crown) at the top:

- torso and limb halves: half-cylinders around the segment's bone axis: U is the angle around the
  axis (-90..90 degrees from the half's centre direction), V the position along the axis;
- head halves: directions from the head bone's head (top of the neck) in equidistant cylindrical
  coordinates (U azimuth around the vertical, V elevation angle), like a globe's map. Faces no
  ray from outside reaches in the rest pose (mouth interior, teeth, the hidden back of the eyes)
  are parked one per cell in a strip at the chart's bottom (``BodyCharts.parked``), so they take
  no texture space from the skin and overlap nothing;
- hands and feet: Anny's own UV island of the part, scaled into the square (artist-made, no overlap).

IUV images (:func:`to_densepose_png`) use the layout of DensePose's ``*_IUV.png`` files: channel 0 the
part index, channel 1 ``U * 255``, channel 2 ``V * 255``, written and read with ``cv2.imwrite`` /
``cv2.imread``, i.e. channel 0 is the file's *blue* channel (read as RGB, such a file is V, U, I).

The texture atlas (:func:`posetransfer.texture.unwrap`) stores part ``p`` in ``atlas[p - 1]`` with
DensePose's texel convention: column ``U * (S - 1)``, row ``(1 - V) * (S - 1)``. IUV from outside the
body fit (a folder of DensePose PNGs, DensePose itself) is read by :mod:`posetransfer.iuv_import`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "MARGIN",
    "NUM_PARTS",
    "PART_NAMES",
    "BodyCharts",
    "anny_charts",
    "build_charts",
    "chart_distortion",
    "chart_overlap",
    "charts_from_body",
    "check_iuv",
    "from_densepose_png",
    "iuv_from_raster",
    "part_index",
    "to_densepose_png",
]

NUM_PARTS = 24
MARGIN = 0.02  # every chart fills [MARGIN, 1 - MARGIN]^2, so bilinear lookups stay inside its tile

PART_NAMES: tuple[str, ...] = (
    "torso back", "torso front", "right hand", "left hand", "left foot", "right foot",
    "upper leg right back", "upper leg left back", "upper leg right front", "upper leg left front",
    "lower leg right back", "lower leg left back", "lower leg right front", "lower leg left front",
    "upper arm left front", "upper arm right front", "upper arm left back", "upper arm right back",
    "lower arm left front", "lower arm right front", "lower arm left back", "lower arm right back",
    "head right", "head left",
)  # fmt: skip

# Anny's frame: Z up, the subject faces -Y, its left is +X.
_UP = np.array([0.0, 0.0, 1.0])
_FORWARD = np.array([0.0, -1.0, 0.0])

# Body segments by bone-label prefix (suffix .L/.R gives the side); any other bone is torso.
_SEGMENT_PREFIXES: dict[str, tuple[str, ...]] = {
    "head": ("neck", "head", "eye."),
    "upperarm": ("upperarm",),
    "lowerarm": ("lowerarm",),
    "hand": ("wrist", "finger", "metacarpal"),
    "upperleg": ("upperleg",),
    "lowerleg": ("lowerleg",),
    "foot": ("foot", "toe"),
}
_SIDES = {"L": "left", "R": "right"}

# Half-cylinder segments: (proximal bone head, distal bone head) of the axis, by side.
_LIMB_AXES: dict[str, tuple[str, str]] = {
    "upperarm": ("upperarm01", "lowerarm01"),
    "lowerarm": ("lowerarm01", "wrist"),
    "upperleg": ("upperleg01", "lowerleg01"),
    "lowerleg": ("lowerleg01", "foot"),
}
_LIMB_PARTS: dict[str, tuple[str, str]] = {  # segment -> (front part name, back part name) stem
    "upperarm": ("upper arm {side} front", "upper arm {side} back"),
    "lowerarm": ("lower arm {side} front", "lower arm {side} back"),
    "upperleg": ("upper leg {side} front", "upper leg {side} back"),
    "lowerleg": ("lower leg {side} front", "lower leg {side} back"),
}
_PARKED_STRIP = 0.10  # head charts keep V in [MARGIN, this] for parked faces, the skin above


def part_index(name: str) -> int:
    """DensePose index (1..24) of a part name from :data:`PART_NAMES`."""
    return PART_NAMES.index(name) + 1


@dataclass(frozen=True)
class BodyCharts:
    """The fixed part assignment and UV charts of one mesh topology.

    ``face_uv[f, k]`` is the chart coordinate (U, V) of corner ``k`` of face ``f`` in the order of the
    ``faces`` array, so a raster's barycentrics interpolate it directly.
    """

    face_part: np.ndarray  # (F,) uint8 in 1..24
    face_uv: np.ndarray  # (F, 3, 2) float32 in [0, 1]
    parked: np.ndarray  # (F,) bool: hidden faces parked in a strip of their chart


def _segment_of_bone(label: str) -> str:
    """Segment name of an Anny bone: ``torso``, ``head`` or e.g. ``upperarm.L``."""
    side = label.rsplit(".", 1)[1] if "." in label else ""
    for segment, prefixes in _SEGMENT_PREFIXES.items():
        if label.startswith(prefixes):
            return segment if segment == "head" else f"{segment}.{side}"
    return "torso"


def _face_segment_scores(
    faces: np.ndarray, bone_weights: np.ndarray, bone_labels: list[str]
) -> tuple[list[str], np.ndarray]:
    """Segment names and ``(F, S)`` summed skinning weight of each face's corners on each segment."""
    bone_segment = [_segment_of_bone(label) for label in bone_labels]
    names = sorted(set(bone_segment))
    column = np.array([names.index(s) for s in bone_segment])
    per_vertex = np.zeros((bone_weights.shape[0], len(names)))
    for k in range(len(names)):
        per_vertex[:, k] = bone_weights[:, column == k].sum(axis=1)
    return names, per_vertex[faces].sum(axis=1)


def _texture_islands(face_texcoords: np.ndarray, num_texcoords: int) -> np.ndarray:
    """``(F,)`` id of the connected UV island (shared texture-coordinate indices) of every face."""
    parent = np.arange(num_texcoords)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, c in face_texcoords:
        for u, v in ((a, b), (a, c)):
            ru, rv = root(u), root(v)
            if ru != rv:
                parent[max(ru, rv)] = min(ru, rv)
    roots = np.array([root(i) for i in range(num_texcoords)])
    return roots[face_texcoords[:, 0]]


def _assign_segments(scores: np.ndarray, names: list[str], islands: np.ndarray) -> np.ndarray:
    """``(F,)`` face segment indices after snapping hands and feet to their texture islands."""
    segment = scores.argmax(axis=1)
    snapped: dict[str, np.ndarray] = {}
    for name in names:
        if not name.startswith(("hand.", "foot.")):
            continue
        k = names.index(name)
        ids, counts = np.unique(islands[segment == k], return_counts=True)
        snapped[name] = islands == ids[counts.argmax()]
    extremity = [names.index(n) for n in snapped]
    others = scores.copy()
    others[:, extremity] = -np.inf
    segment = others.argmax(axis=1)  # best non-extremity segment, then the islands on top
    for name, mask in snapped.items():
        segment[mask] = names.index(name)
    return segment


def _half_cylinder(
    points: np.ndarray, base: np.ndarray, up: np.ndarray, centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Angle (radians, 0 at ``centre``) and height along ``up`` of ``points`` (..., 3) about an axis.

    The angle grows towards ``up x centre``, which makes (angle, height) an orientation-preserving
    chart seen from outside the half whose outward direction is ``centre``.
    """
    d = points - base
    height = d @ up
    side = np.cross(up, centre)
    return np.arctan2(d @ side, d @ centre), height


def _corner_angles(angle: np.ndarray) -> np.ndarray:
    """Unwrap corner angles ``(N, 3)`` next to their face's first corner, then clip to the half."""
    ref = angle[:, :1]
    unwrapped = ref + (angle - ref + np.pi) % (2 * np.pi) - np.pi
    return np.clip(unwrapped, -np.pi / 2, np.pi / 2)


def _fit(values: np.ndarray, lo: float = MARGIN, hi: float = 1.0 - MARGIN) -> np.ndarray:
    """Affine map of ``values`` onto [lo, hi] (its own min and max)."""
    vmin, vmax = float(values.min()), float(values.max())
    return lo + (hi - lo) * (values - vmin) / max(vmax - vmin, 1e-12)


def _angle_to_u(angle: np.ndarray) -> np.ndarray:
    """Half-cylinder angle in [-pi/2, pi/2] to U in [MARGIN, 1 - MARGIN] (fixed, so halves meet)."""
    return MARGIN + (1 - 2 * MARGIN) * (angle + np.pi / 2) / np.pi


def _perpendicular(direction: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Unit component of ``direction`` perpendicular to the unit ``axis``."""
    d = direction - (direction @ axis) * axis
    return d / np.linalg.norm(d)


def _cylinder_halves(
    corners: np.ndarray, base: np.ndarray, top: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front mask and chart of the faces ``corners`` (N, 3, 3) of a segment with axis base -> top.

    Returns ``(front (N,), uv_front (N, 3, 2), uv_back (N, 3, 2))``; each chart is only meaningful
    on its half's faces and is fitted to them by the caller.
    """
    up = (top - base) / np.linalg.norm(top - base)
    forward = _perpendicular(_FORWARD, up)
    angle, _ = _half_cylinder(corners.mean(axis=1), base, up, forward)
    front = np.abs(angle) < np.pi / 2
    charts = []
    for centre in (forward, -forward):
        corner_angle, height = _half_cylinder(corners, base, up, centre)
        charts.append(np.stack([_angle_to_u(_corner_angles(corner_angle)), height], axis=-1))
    return front, charts[0], charts[1]


def _exposed(
    vertices: np.ndarray, faces: np.ndarray, subset: np.ndarray, num_directions: int = 48
) -> np.ndarray:
    """Whether some ray from each face of ``subset`` leaves the mesh (the face can be seen at all).

    Rays start just off the face centroid along a fixed Fibonacci set of outward directions.
    """
    from posetransfer.raster import Rasterizer

    k = np.arange(num_directions) + 0.5
    z = 1 - 2 * k / num_directions
    phi = np.pi * (1 + 5**0.5) * k
    dirs = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], axis=1)
    tri = vertices[faces[subset]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    face_idx, dir_idx = np.nonzero(normal @ dirs.T > 0.2)
    origins = tri.mean(axis=1)[face_idx] + 1e-4 * normal[face_idx]
    rasterizer = Rasterizer(faces, len(vertices), device="cpu", reference_vertices=vertices)
    distance, _ = rasterizer.cast(origins, dirs[dir_idx])
    exposed = np.zeros(len(tri), dtype=bool)
    exposed[face_idx[np.isinf(distance)]] = True
    return exposed


def _park(count: int) -> np.ndarray:
    """``(count, 3, 2)`` small disjoint triangles, one per cell of a grid in the chart's bottom strip."""
    width, height = 1 - 2 * MARGIN, _PARKED_STRIP - MARGIN
    cols = max(1, int(np.ceil(np.sqrt(count * width / height))))
    rows = max(1, int(np.ceil(count / cols)))
    cw, ch = width / cols, height / rows
    i = np.arange(count)
    x0 = MARGIN + (i % cols) * cw + 0.1 * cw
    y0 = MARGIN + (i // cols) * ch + 0.1 * ch
    tri = np.zeros((count, 3, 2))
    tri[:, :, 0] = x0[:, None] + np.array([0.0, 0.8, 0.0]) * cw
    tri[:, :, 1] = y0[:, None] + np.array([0.0, 0.0, 0.8]) * ch
    return tri


def _head_chart(corners: np.ndarray, centre_point: np.ndarray, side: float) -> np.ndarray:
    """Equidistant chart of head faces ``(N, 3, 3)`` on the ``side`` (+-1) of X, seen from ``centre_point``.

    U is the azimuth of the direction from the centre, V its elevation angle (not its sine, which
    would squash the neck below the centre into a thin band).
    """
    d = corners - centre_point
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    angle, _ = _half_cylinder(d, np.zeros(3), _UP, np.array([side, 0.0, 0.0]))
    elevation = np.arcsin(np.clip(d @ _UP, -1.0, 1.0))
    return np.stack([_angle_to_u(_corner_angles(angle)), elevation], axis=-1)


def _island_chart(texcoords: np.ndarray) -> np.ndarray:
    """Anny's UVs of one island ``(N, 3, 2)`` stretched onto the square."""
    return np.stack([_fit(texcoords[..., 0]), _fit(texcoords[..., 1])], axis=-1)


def build_charts(
    vertices: np.ndarray,
    faces: np.ndarray,
    bone_weights: np.ndarray,
    bone_labels: list[str],
    bone_heads: np.ndarray,
    texcoords: np.ndarray,
    face_texcoords: np.ndarray,
) -> BodyCharts:
    """Part of every face and its chart UVs, from a rest-pose Anny mesh (see the module docstring).

    ``vertices`` (V, 3) rest pose, ``faces`` (F, 3), ``bone_weights`` (V, J) dense skinning weights,
    ``bone_heads`` (J, 3) rest bone heads, ``texcoords`` (T, 2) and ``face_texcoords`` (F, 3) Anny's UVs.
    Deterministic: the same inputs give the same charts bit for bit.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    bone_weights, bone_heads = np.asarray(bone_weights), np.asarray(bone_heads)
    face_texcoords = np.asarray(face_texcoords)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {faces.shape}")
    if bone_weights.shape != (len(vertices), len(bone_labels)) or bone_heads.shape != (len(bone_labels), 3):
        raise ValueError(
            f"bone weights {bone_weights.shape} / heads {bone_heads.shape} disagree with the mesh"
        )
    if face_texcoords.shape != faces.shape:
        raise ValueError(f"face_texcoords must be {faces.shape}, got {face_texcoords.shape}")
    head = {label: np.asarray(bone_heads[i], dtype=np.float64) for i, label in enumerate(bone_labels)}
    names, scores = _face_segment_scores(faces, bone_weights, bone_labels)
    islands = _texture_islands(face_texcoords, len(texcoords))
    segment = _assign_segments(scores, names, islands)
    corners = vertices[faces]
    part = np.zeros(len(faces), dtype=np.uint8)
    uv = np.zeros((len(faces), 3, 2))
    parked = np.zeros(len(faces), dtype=bool)
    for k, name in enumerate(names):
        idx = np.flatnonzero(segment == k)
        stem, _, side = name.partition(".")
        if stem == "torso":
            pairs = _split_cylinder(corners[idx], head["root"], head["neck01"])
            _store(part, uv, idx, pairs, (part_index("torso front"), part_index("torso back")))
        elif stem in _LIMB_AXES:
            proximal, distal = (head[f"{b}.{side}"] for b in _LIMB_AXES[stem])
            pairs = _split_cylinder(corners[idx], distal, proximal)  # V grows towards the body
            front, back = (part_index(p.format(side=_SIDES[side])) for p in _LIMB_PARTS[stem])
            _store(part, uv, idx, pairs, (front, back))
        elif stem in ("hand", "foot"):
            part[idx] = part_index(f"{_SIDES[side]} {stem}")
            uv[idx] = _island_chart(np.asarray(texcoords, dtype=np.float64)[face_texcoords[idx]])
        else:  # head
            _head_parts(vertices, faces, idx, head, part, uv, parked)
    return BodyCharts(face_part=part, face_uv=uv.astype(np.float32), parked=parked)


def _split_cylinder(
    corners: np.ndarray, base: np.ndarray, top: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(front mask, chart), (back mask, chart)] of a segment's faces, each chart fitted in V."""
    front, uv_front, uv_back = _cylinder_halves(corners, base, top)
    out = []
    for mask, chart in ((front, uv_front), (~front, uv_back)):
        chart = chart[mask]
        if len(chart):
            chart[..., 1] = _fit(chart[..., 1])
        out.append((mask, chart))
    return out


def _store(
    part: np.ndarray,
    uv: np.ndarray,
    idx: np.ndarray,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    ids: tuple[int, int],
) -> None:
    """Write the halves' part ids and charts into the face arrays."""
    for (mask, chart), pid in zip(pairs, ids, strict=True):
        part[idx[mask]] = pid
        uv[idx[mask]] = chart


def _head_parts(
    vertices: np.ndarray,
    faces: np.ndarray,
    idx: np.ndarray,
    head: dict[str, np.ndarray],
    part: np.ndarray,
    uv: np.ndarray,
    parked: np.ndarray,
) -> None:
    """Right/left head halves: equidistant charts of the exposed faces, hidden faces parked."""
    # Directions are taken from the head bone's head (top of the neck, below the skull's centre):
    # from there the neck is not squashed near a pole, nor the crown.
    centre = head["head"]
    exposed = _exposed(vertices, faces, idx)
    centroid_x = vertices[faces[idx]].mean(axis=1)[:, 0] - centre[0]
    for side, name in ((-1.0, "head right"), (1.0, "head left")):
        half = (centroid_x < 0) if side < 0 else (centroid_x >= 0)
        shown, hidden = idx[half & exposed], idx[half & ~exposed]
        chart = _head_chart(vertices[faces[shown]], centre, side)
        chart[..., 1] = _fit(chart[..., 1], _PARKED_STRIP + MARGIN, 1 - MARGIN)
        part[idx[half]] = part_index(name)
        uv[shown] = chart
        uv[hidden] = _park(len(hidden))
        parked[hidden] = True


def charts_from_body(body) -> BodyCharts:  # body: posetransfer.synthetic.body.AnnyBody
    """:func:`build_charts` of an :class:`~posetransfer.synthetic.body.AnnyBody`'s rest pose.

    Use :func:`anny_charts` for the fixed charts; this one follows the body's own phenotype.
    """
    weights = body.model.vertex_bone_weights.detach().cpu().numpy()
    indices = body.model.vertex_bone_indices.detach().cpu().numpy()
    dense = np.zeros((body.num_vertices, len(body.bone_labels)))
    np.add.at(dense, (np.arange(body.num_vertices)[:, None], indices), weights)
    return build_charts(
        body.rest_vertices, body.faces, dense, body.bone_labels, body.rest_bone_heads, body.uv, body.face_uv
    )


@functools.lru_cache(maxsize=2)
def _anny_charts_cached(cache_dir: str) -> BodyCharts:
    from posetransfer.synthetic.body import AnnyBody, Phenotype

    return charts_from_body(AnnyBody(Path(cache_dir), Phenotype(), device="cpu"))


def anny_charts(cache_dir: str | Path) -> BodyCharts:
    """The charts of Anny's topology, from the neutral phenotype's rest pose; built once per process.

    The same for every subject: parts and charts are a property of the mesh topology, not of a shape.
    """
    return _anny_charts_cached(str(Path(cache_dir).resolve()))


def iuv_from_raster(
    face: np.ndarray, bary: np.ndarray, charts: BodyCharts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel part ``I`` (uint8, 0 background) and chart ``U``, ``V`` (float32, 0 on background).

    ``face`` ``(..., H, W)`` face index (-1 background) and ``bary`` ``(..., H, W, 2)`` as returned by
    :meth:`posetransfer.raster.Rasterizer.render`, any leading batch dimensions.
    """
    face = np.asarray(face)
    bary = np.asarray(bary, dtype=np.float32)
    if bary.shape != (*face.shape, 2):
        raise ValueError(f"bary must have shape {(*face.shape, 2)}, got {bary.shape}")
    if not np.issubdtype(face.dtype, np.integer):
        raise ValueError(f"face must hold integer face indices, got {face.dtype}")
    if face.size and face.max() >= len(charts.face_part):
        raise ValueError(f"face index {face.max()} out of range for {len(charts.face_part)} faces")
    hit = face >= 0
    f = face[hit]
    b = bary[hit]
    w = np.stack([1 - b[:, 0] - b[:, 1], b[:, 0], b[:, 1]], axis=1)  # (N, 3)
    uv = np.einsum("nk,nkc->nc", w, charts.face_uv[f])
    part = np.zeros(face.shape, dtype=np.uint8)
    u = np.zeros(face.shape, dtype=np.float32)
    v = np.zeros(face.shape, dtype=np.float32)
    part[hit] = charts.face_part[f]
    u[hit] = np.clip(uv[:, 0], 0.0, 1.0)
    v[hit] = np.clip(uv[:, 1], 0.0, 1.0)
    return part, u, v


def check_iuv(part: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Shapes and ranges shared by the IUV writers."""
    if u.shape != part.shape or v.shape != part.shape:
        raise ValueError(f"I {part.shape}, U {u.shape} and V {v.shape} must have the same shape")
    if part.size and int(part.max()) > NUM_PARTS:
        raise ValueError(f"part indices must lie in 0..{NUM_PARTS}, got {int(part.max())}")


def to_densepose_png(part: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3)`` uint8 IUV image, DensePose's layout: [I, round(255 U), round(255 V)].

    Write it with ``cv2.imwrite`` (channel 0, the part, lands in the file's blue channel, as in
    DensePose's ``*_IUV.png``); background pixels are all zero.
    """
    part, u, v = np.asarray(part), np.asarray(u, dtype=np.float32), np.asarray(v, dtype=np.float32)
    check_iuv(part, u, v)
    fg = part > 0
    out = np.zeros((*part.shape, 3), dtype=np.uint8)
    out[..., 0] = part.astype(np.uint8)
    out[..., 1] = np.where(fg, np.rint(np.clip(u, 0, 1) * 255), 0).astype(np.uint8)
    out[..., 2] = np.where(fg, np.rint(np.clip(v, 0, 1) * 255), 0).astype(np.uint8)
    return out


def from_densepose_png(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`to_densepose_png` (exact to 1/255): ``I`` uint8, ``U``, ``V`` float32.

    ``image`` ``(..., H, W, 3)`` uint8 as ``cv2.imread`` returns a DensePose IUV PNG (no BGR->RGB swap).
    """
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"IUV image must be (..., H, W, 3) uint8, got {image.shape} {image.dtype}")
    part = image[..., 0].copy()
    if part.size and int(part.max()) > NUM_PARTS:
        raise ValueError(f"part index {int(part.max())} > {NUM_PARTS}: not a DensePose IUV image")
    fg = part > 0
    u = np.where(fg, image[..., 1] / np.float32(255), 0).astype(np.float32)
    v = np.where(fg, image[..., 2] / np.float32(255), 0).astype(np.float32)
    return part, u, v


def _rasterise_count(triangles: np.ndarray, resolution: int) -> np.ndarray:
    """How many triangles ``(N, 3, 2)`` (coordinates in [0, 1]) cover each pixel centre."""
    count = np.zeros((resolution, resolution), dtype=np.int32)
    pts = triangles * resolution
    for (ax, ay), (bx, by), (cx, cy) in pts:
        x0, x1 = max(int(np.floor(min(ax, bx, cx))), 0), min(int(np.ceil(max(ax, bx, cx))), resolution)
        y0, y1 = max(int(np.floor(min(ay, by, cy))), 0), min(int(np.ceil(max(ay, by, cy))), resolution)
        den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if x1 <= x0 or y1 <= y0 or abs(den) < 1e-12:
            continue
        xs = np.arange(x0, x1) + 0.5
        ys = (np.arange(y0, y1) + 0.5)[:, None]
        l1 = ((by - cy) * (xs - cx) + (cx - bx) * (ys - cy)) / den
        l2 = ((cy - ay) * (xs - cx) + (ax - cx) * (ys - cy)) / den
        count[y0:y1, x0:x1] += (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
    return count


def chart_overlap(charts: BodyCharts, part: int, resolution: int = 256) -> float:
    """Share of a part's chart area covered more than once (pixel centres of a ``resolution``^2 raster)."""
    count = _rasterise_count(charts.face_uv[charts.face_part == part].astype(np.float64), resolution)
    covered = int((count > 0).sum())
    return float((count > 1).sum()) / max(covered, 1)


def chart_distortion(
    charts: BodyCharts, vertices: np.ndarray, faces: np.ndarray, part: int
) -> tuple[float, float]:
    """10th and 90th percentiles (by surface area) of a part's chart-to-surface area ratio.

    Each face's share of the chart's area over its share of the part's surface area: 1 everywhere
    for an area-preserving chart. Parked faces are left out.
    """
    sel = (charts.face_part == part) & ~charts.parked
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)[sel]]
    area3 = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    t = charts.face_uv[sel].astype(np.float64)
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area2 = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    weight = area3 / area3.sum()
    ratio = (area2 / area2.sum()) / np.maximum(weight, 1e-300)
    order = np.argsort(ratio)
    cumulative = np.cumsum(weight[order])
    p10, p90 = (ratio[order][min(np.searchsorted(cumulative, q), len(order) - 1)] for q in (0.1, 0.9))
    return float(p10), float(p90)

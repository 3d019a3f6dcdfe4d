"""Procedural appearance: the subject's skin, hair, face and clothes, and the static room.

Clothing is a solid texture: every surface point is coloured from its position on the body in
Anny's rest pose (interpolated per pixel from per-vertex fields), so patterns stick to the skin
through any motion, have no UV seams, and garment edges are sharp at any resolution. Parts
(arm, hand, head, ...) come from the skinning weights, so edges follow the anatomy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posetransfer.raster import Camera

__all__ = ["BodyTexture", "Outfit", "RoomStyle", "lambert", "render_room", "vertex_normals"]

_SKIN = ((241, 194, 167), (226, 176, 140), (198, 138, 104), (160, 106, 76), (112, 72, 52))
_HAIR = ((28, 24, 22), (58, 40, 28), (98, 68, 44), (176, 146, 100), (140, 136, 132))
_SHIRT = (
    (178, 42, 42),
    (40, 52, 112),
    (48, 118, 70),
    (214, 176, 52),
    (222, 222, 216),
    (38, 126, 138),
    (214, 108, 40),
    (108, 60, 138),
    (116, 118, 124),
)
_TROUSERS = ((52, 72, 118), (34, 34, 38), (168, 148, 108), (88, 88, 94), (98, 74, 54))
_SHOES = ((222, 222, 216), (30, 30, 30), (88, 58, 38), (166, 40, 40))
_WALL = ((206, 194, 172), (170, 192, 204), (190, 202, 174), (216, 206, 196), (182, 172, 194), (214, 186, 160))
_WAINSCOT = ((120, 90, 70), (232, 230, 222), (84, 104, 118), (140, 150, 120))
_WOOD = ((150, 104, 64), (118, 84, 54), (182, 140, 96), (96, 70, 52))
_TILE = ((206, 204, 196), (150, 150, 148), (176, 160, 140))


def _pick(rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...], jitter: float = 0.06) -> tuple:
    """A palette colour in [0, 1], its brightness and hue jittered a little."""
    base = np.array(palette[int(rng.integers(len(palette)))], dtype=np.float64) / 255.0
    tint = 1.0 + rng.uniform(-jitter, jitter, 3) + rng.uniform(-jitter, jitter)
    return tuple(np.clip(base * tint, 0.0, 1.0).tolist())


@dataclass(frozen=True)
class Outfit:
    """Colours (RGB in [0, 1]) and garment choices of the subject."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shirt: tuple[float, float, float]
    shirt_accent: tuple[float, float, float]
    shirt_pattern: str  # "solid", "stripes" or "checker"
    pattern_period: float  # metres
    long_sleeves: bool
    trousers: tuple[float, float, float]
    shorts: bool
    belt: bool
    shoes: tuple[float, float, float]
    waves: tuple[tuple[float, float, float, float], ...]  # fabric noise: wave vector (1/m) and phase

    @staticmethod
    def sample(rng: np.random.Generator) -> Outfit:
        shirt = _pick(rng, _SHIRT)
        accent = _pick(rng, _SHIRT)
        if np.abs(np.subtract(shirt, accent)).sum() < 0.4:  # keep the pattern visible
            accent = tuple(float(c) for c in np.clip(1.0 - np.asarray(shirt) * 0.8, 0, 1))
        waves = []
        for _ in range(4):
            direction = rng.normal(size=3)
            direction *= 2.0 * math.pi / rng.uniform(0.006, 0.03) / np.linalg.norm(direction)
            waves.append((*direction.tolist(), float(rng.uniform(0, 2 * math.pi))))
        return Outfit(
            skin=_pick(rng, _SKIN, 0.04),
            hair=_pick(rng, _HAIR),
            shirt=shirt,
            shirt_accent=accent,
            shirt_pattern=str(rng.choice(["solid", "stripes", "stripes", "checker"])),
            pattern_period=float(rng.uniform(0.05, 0.10)),
            long_sleeves=bool(rng.random() < 0.4),
            trousers=_pick(rng, _TROUSERS),
            shorts=bool(rng.random() < 0.2),
            belt=bool(rng.random() < 0.6),
            shoes=_pick(rng, _SHOES),
            waves=tuple(waves),
        )


@dataclass(frozen=True)
class BodyLandmarks:
    """Rest-pose reference points (Anny's frame, identity pose) that garment edges are placed from."""

    eye_l: np.ndarray  # eyeball centres
    eye_r: np.ndarray
    eye_z: float
    eye_y: float
    eye_x: float
    nose: np.ndarray
    ear_y: float
    ear_z: float
    shoulder_z: float
    hip_z: float
    knee_z: float
    ankle_z: float


class BodyTexture:
    """Per-pixel albedo of the body from per-vertex rest-pose fields."""

    # Columns of the per-vertex field array.
    X, Y, Z, ARM_D, ARM_W, HEAD_W, EYE_W, HAND_W, FOOT_W = range(9)

    def __init__(
        self,
        rest_vertices: np.ndarray,
        rest_keypoints: np.ndarray,
        eye_centres: np.ndarray,
        shoulders: np.ndarray,
        groups: dict[str, np.ndarray],
        outfit: Outfit,
    ) -> None:
        """``rest_keypoints``: COCO-23, rest pose; ``eye_centres``, ``shoulders``: (2, 3), left first."""
        if rest_vertices.ndim != 2 or rest_vertices.shape[1] != 3:
            raise ValueError(f"rest_vertices must be (V, 3), got {rest_vertices.shape}")
        if rest_keypoints.shape != (23, 3):
            raise ValueError(f"rest_keypoints must be (23, 3), got {rest_keypoints.shape}")
        self.outfit = outfit
        kp = rest_keypoints
        self.marks = BodyLandmarks(
            eye_l=eye_centres[0], eye_r=eye_centres[1], eye_z=float(kp[1:3, 2].mean()),
            eye_y=float(kp[1:3, 1].mean()), eye_x=float(abs(kp[1, 0] - kp[2, 0]) / 2), nose=kp[0],
            ear_y=float(kp[3:5, 1].mean()), ear_z=float(kp[3:5, 2].mean()),
            shoulder_z=float(kp[5:7, 2].mean()), hip_z=float(kp[11:13, 2].mean()),
            knee_z=float(kp[13:15, 2].mean()), ankle_z=float(kp[15:17, 2].mean()),
        )  # fmt: skip
        # Distance along each arm from its shoulder, towards the wrist (COCO 9 and 10).
        arm_d = np.zeros(len(rest_vertices))
        self.arm_length = 0.0
        for shoulder, wrist, side in ((shoulders[0], kp[9], 1.0), (shoulders[1], kp[10], -1.0)):
            axis = (wrist - shoulder) / np.linalg.norm(wrist - shoulder)
            this_side = np.sign(rest_vertices[:, 0]) == side
            arm_d[this_side] = (rest_vertices[this_side] - shoulder) @ axis
            self.arm_length = float(np.linalg.norm(wrist - shoulder))
        arm_w = groups["upperarm"] + groups["forearm"] + groups["hand"]
        self.fields = np.column_stack([
            rest_vertices, arm_d, arm_w, groups["head"], groups["eyes"], groups["hand"], groups["foot"],
        ]).astype(np.float32)  # fmt: skip

    def albedo(self, f: np.ndarray) -> np.ndarray:
        """RGB albedo in [0, 1], ``(N, 3)``, from interpolated fields ``(N, 9)``."""
        o, m = self.outfit, self.marks
        x, y, z = f[:, self.X], f[:, self.Y], f[:, self.Z]
        arm = f[:, self.ARM_W] > 0.5
        head = f[:, self.HEAD_W] > 0.5
        color = np.empty((len(f), 3), np.float32)
        color[:] = o.skin

        # Clothes, bottom-up; the torso's garments end at the arms, which have their own rule.
        waist = m.hip_z + 0.09
        front = np.clip((m.eye_y + 0.08 - y) / 0.06, 0.0, 1.0)  # 1 on the chest, 0 on the back
        neckline = m.shoulder_z + 0.075 - 0.06 * front
        sleeve = self.arm_length - 0.03 if o.long_sleeves else 0.12
        shirt = (~arm & ~head & (z > waist) & (z < neckline)) | (arm & (f[:, self.ARM_D] < sleeve))
        shirt &= f[:, self.HAND_W] < 0.5
        trousers = ~arm & (z <= waist)
        if o.shorts:
            trousers &= z > m.knee_z + 0.04
        shoes = ~arm & ((z < m.ankle_z + 0.045) | (f[:, self.FOOT_W] > 0.5))
        color[shirt] = self._shirt(x[shirt], z[shirt])
        color[trousers] = o.trousers
        if o.belt:
            color[trousers & (z > waist - 0.035)] = (0.12, 0.09, 0.07)
        color[shoes] = o.shoes
        self._face(color, f, head)
        # Fabric and skin micro-texture, fixed to the body so it moves with it (structure for flow).
        return np.clip(color * self._noise(f[:, :3])[:, None], 0.0, 1.0)

    def _shirt(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        o = self.outfit
        k = 2.0 * math.pi / o.pattern_period
        if o.shirt_pattern == "stripes":
            accent = np.sin(k * z) > 0.3
        elif o.shirt_pattern == "checker":
            accent = np.sin(k * x) * np.sin(k * z) > 0
        else:
            accent = np.zeros(len(z), bool)
        return np.where(accent[:, None], np.float32(o.shirt_accent), np.float32(o.shirt))

    def _face(self, color: np.ndarray, f: np.ndarray, head: np.ndarray) -> None:
        """Hair, eyebrows, eyes and lips, in place."""
        o, m = self.outfit, self.marks
        x, y, z = f[:, self.X], f[:, self.Y], f[:, self.Z]
        hair = head & (
            (z > m.eye_z + 0.05)
            | ((y > m.ear_y + 0.012) & (z > m.ear_z - 0.06))
            | ((y > m.ear_y - 0.025) & (z > m.eye_z + 0.015))
        )
        color[hair] = o.hair
        brow = (
            head
            & (y < m.eye_y + 0.02)
            & (np.abs(np.abs(x) - m.eye_x) < 0.021)
            & (z > m.eye_z + 0.016)
            & (z < m.eye_z + 0.025)
        )
        color[brow] = np.asarray(o.hair) * 0.8
        mouth_z = m.nose[2] - 0.034
        lips = head & (y < m.nose[1] + 0.05) & ((x / 0.023) ** 2 + ((z - mouth_z) / 0.0075) ** 2 < 1.0)
        color[lips] = np.asarray(o.skin) * (0.75, 0.45, 0.45)
        eye = f[:, self.EYE_W] > 0.5
        if eye.any():
            centre = np.where((x[eye] > 0)[:, None], m.eye_l, m.eye_r)
            radial = np.hypot(x[eye] - centre[:, 0], z[eye] - centre[:, 2])
            shade = np.where(radial < 0.0025, 0.03, np.where(radial < 0.006, 0.2, 0.88))
            color[eye] = shade[:, None] * np.array([0.95, 0.9, 0.85])

    def _noise(self, p: np.ndarray) -> np.ndarray:
        waves = np.asarray(self.outfit.waves, dtype=np.float32)
        return 1.0 + 0.035 * np.sin(p @ waves[:, :3].T + waves[:, 3]).sum(axis=1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (counter-clockwise faces point outwards)."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(vertices, dtype=np.float64)
    flat = faces.reshape(-1)
    for c in range(3):
        n[:, c] = np.bincount(flat, weights=np.repeat(face_n[:, c], 3), minlength=len(vertices))
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def lambert(
    albedo: np.ndarray, normals: np.ndarray, light_dir: np.ndarray, ambient: float = 0.35
) -> np.ndarray:
    """Lambert shading with an ambient term and a weak sky term; ``light_dir`` points towards the light."""
    n = normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    diffuse = np.maximum(n @ light_dir, 0.0)
    sky = 0.5 + 0.5 * n[..., 2]
    return albedo * (ambient + (0.9 - ambient) * diffuse + 0.12 * sky)[..., None]


@dataclass(frozen=True)
class RoomStyle:
    """A box room: floor z=0, back wall y=back, side walls x=+-half_width, ceiling."""

    back: float
    half_width: float
    ceiling: float
    wall: tuple[float, float, float]
    wainscot: tuple[float, float, float]
    wallpaper: str  # "stripes" or "diamonds"
    floor: str  # "wood" or "tiles"
    floor_color: tuple[float, float, float]
    floor_accent: tuple[float, float, float]
    pictures: tuple[tuple[float, float, float, float], ...]  # x centre, z centre, width, height
    picture_colors: tuple[tuple[float, float, float], ...]
    door_x: float
    light: tuple[float, float, float]
    seed: int

    @staticmethod
    def sample(rng: np.random.Generator) -> RoomStyle:
        floor = str(rng.choice(["wood", "tiles"]))
        palette = _WOOD if floor == "wood" else _TILE
        door_x = float(rng.choice([-1.0, 1.0]) * rng.uniform(1.3, 1.8))
        pictures = []
        for x in rng.uniform(-2.0, 2.0, 3):
            if abs(x - door_x) > 1.1 and all(abs(x - p[0]) > 1.0 for p in pictures):
                pictures.append(
                    (
                        float(x),
                        float(rng.uniform(1.45, 1.7)),
                        float(rng.uniform(0.4, 0.8)),
                        float(rng.uniform(0.35, 0.6)),
                    )
                )
        return RoomStyle(
            back=float(rng.uniform(1.4, 2.0)),
            half_width=float(rng.uniform(2.6, 3.2)),
            ceiling=float(rng.uniform(2.6, 2.9)),
            wall=_pick(rng, _WALL),
            wainscot=_pick(rng, _WAINSCOT),
            wallpaper=str(rng.choice(["stripes", "diamonds"])),
            floor=floor,
            floor_color=_pick(rng, palette),
            floor_accent=_pick(rng, palette),
            pictures=tuple(pictures),
            picture_colors=tuple(_pick(rng, _SHIRT, 0.15) for _ in range(3 * len(pictures))),
            door_x=door_x,
            light=(float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-2.0, -1.0)), 2.4),
            seed=int(rng.integers(2**31)),
        )


def _hash01(*ints: np.ndarray, seed: int = 0) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) from integer lattice coordinates."""
    h = np.full(np.broadcast(*ints).shape, seed & 0xFFFFFFFF, dtype=np.uint64)
    for i, value in enumerate(ints):
        h ^= (np.asarray(value).astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B9 + i)) * np.uint64(
            0x85EBCA6B
        )
        h = (h ^ (h >> np.uint64(13))) * np.uint64(0xC2B2AE35) & np.uint64(0xFFFFFFFF)
    return (h & np.uint64(0xFFFFFF)).astype(np.float64) / float(1 << 24)


def render_room(camera: Camera, style: RoomStyle) -> np.ndarray:
    """The empty room seen by ``camera``: (H, W, 3) uint8, by analytic ray-plane intersection."""
    origin, dirs = camera.pixel_rays()
    dirs = dirs.astype(np.float64)
    planes = (  # (axis, offset, outward normal sign of the surface facing the room)
        (2, 0.0, 1.0), (2, style.ceiling, -1.0), (1, style.back, -1.0),
        (0, -style.half_width, 1.0), (0, style.half_width, -1.0),
    )  # fmt: skip
    best_t = np.full(dirs.shape[:2], np.inf)
    which = np.full(dirs.shape[:2], -1)
    for index, (axis, offset, _) in enumerate(planes):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (offset - origin[axis]) / dirs[..., axis]
        closer = (t > 0) & (t < best_t)
        best_t[closer], which[closer] = t[closer], index
    best_t[which < 0] = 1.0  # rays leaving the room (none with a camera inside it): any finite point
    p = origin + best_t[..., None] * dirs
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    color = np.zeros((*which.shape, 3))
    normal = np.zeros((*which.shape, 3))
    for index, (axis, _, sign) in enumerate(planes):
        normal[which == index, axis] = sign

    floor = which == 0
    color[floor] = _floor(x[floor], y[floor], style)
    color[which == 1] = (0.93, 0.93, 0.91)
    back = which == 2
    color[back] = _back_wall(x[back], z[back], style)
    side = (which == 3) | (which == 4)
    color[side] = _wall(y[side], z[side], style) * 0.92

    # Point light with soft falloff, and darkening into the room's corners.
    to_light = np.asarray(style.light) - p
    dist = np.linalg.norm(to_light, axis=-1)
    diffuse = np.maximum((normal * to_light).sum(-1) / np.maximum(dist, 1e-6), 0.0)
    shade = 0.5 + 0.6 * diffuse / (1.0 + 0.08 * dist**2)
    corner = np.minimum.reduce(
        [np.abs(z), np.abs(style.back - y), np.abs(style.half_width - np.abs(x)), np.abs(style.ceiling - z)]
    )
    shade *= 1.0 - 0.25 * np.exp(-corner / 0.15)
    rgb = color * shade[..., None]
    grain = _hash01(np.arange(rgb.shape[0])[:, None], np.arange(rgb.shape[1])[None, :], seed=style.seed)
    rgb *= (0.985 + 0.03 * grain)[..., None]  # fixed sensor-like grain; the room stays static
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _floor(x: np.ndarray, y: np.ndarray, style: RoomStyle) -> np.ndarray:
    base, accent = np.asarray(style.floor_color), np.asarray(style.floor_accent)
    if style.floor == "wood":
        board_w, board_l = 0.16, 1.2
        bx = np.floor(x / board_w)
        shifted = y / board_l + _hash01(bx, seed=style.seed)
        by = np.floor(shifted)
        mix = _hash01(bx, by, seed=style.seed + 1)
        color = base * (1 - 0.5 * mix)[:, None] + accent * (0.5 * mix)[:, None]
        color *= (1.0 + 0.06 * np.sin(90.0 * x + 6.0 * np.sin(3.0 * y + 5.0 * mix)))[:, None]
        seam = (np.mod(x / board_w, 1.0) < 0.04) | (np.mod(shifted, 1.0) < 0.008)
    else:
        size = 0.45
        checker = (np.floor(x / size) + np.floor(y / size)) % 2 == 0
        color = np.where(checker[:, None], base, accent * 0.9 + base * 0.1)
        color *= (1.0 + 0.05 * (_hash01(np.floor(x / size), np.floor(y / size), seed=style.seed) - 0.5))[
            :, None
        ]
        seam = (np.mod(x / size, 1.0) < 0.02) | (np.mod(y / size, 1.0) < 0.02)
    color[seam] *= 0.6
    return color


def _wall(along: np.ndarray, z: np.ndarray, style: RoomStyle) -> np.ndarray:
    """Wallpaper above a panelled wainscot, a rail and a skirting board; ``along`` runs along the wall."""
    wall = np.asarray(style.wall)
    if style.wallpaper == "stripes":
        pattern = np.sin(2 * math.pi * along / 0.22) > 0.4
    else:
        u, v = along / 0.25, (z - 0.95) / 0.3
        pattern = (np.abs(np.mod(u + v, 1.0) - 0.5) < 0.06) | (np.abs(np.mod(u - v, 1.0) - 0.5) < 0.06)
    color = np.where(pattern[:, None], wall * 0.88, wall)
    panel = z < 0.92
    lines = (np.mod(along / 0.55, 1.0) < 0.03) & (z > 0.12)
    color[panel] = np.asarray(style.wainscot) * np.where(lines[panel], 0.75, 1.0)[:, None]
    color[(z >= 0.92) & (z < 0.97)] = (0.92, 0.91, 0.88)  # rail
    color[z < 0.1] = (0.9, 0.89, 0.86)  # skirting
    return color


def _back_wall(x: np.ndarray, z: np.ndarray, style: RoomStyle) -> np.ndarray:
    color = _wall(x, z, style)
    # A door: frame, panels and a handle.
    dx = x - style.door_x
    door = (np.abs(dx) < 0.5) & (z < 2.12)
    leaf = (np.abs(dx) < 0.44) & (z < 2.06)
    color[door] = (0.93, 0.92, 0.9)
    wood = np.array([0.55, 0.38, 0.24]) * (1.0 + 0.05 * np.sin(70.0 * x[leaf]))[:, None]
    color[leaf] = wood
    inset = leaf & (np.abs(np.abs(dx) - 0.2) < 0.14) & (np.abs(np.mod(z, 1.0) - 0.5) < 0.35) & (z > 0.2)
    color[inset] *= 0.82
    handle = (np.abs(dx + np.sign(style.door_x) * 0.36) < 0.03) & (np.abs(z - 1.02) < 0.02)
    color[handle] = (0.85, 0.8, 0.55)
    # Framed abstract pictures.
    for i, (cx, cz, w, h) in enumerate(style.pictures):
        u, v = (x - cx) / w + 0.5, (z - cz) / h + 0.5
        frame = (u > 0) & (u < 1) & (v > 0) & (v < 1)
        color[frame] = (0.16, 0.12, 0.1)
        inner = frame & (u > 0.08) & (u < 0.92) & (v > 0.08) & (v < 0.92)
        band = np.clip((u[inner] * 3 + 0.5 * np.sin(6 * v[inner])).astype(int), 0, 2)
        color[inner] = np.asarray(style.picture_colors[3 * i : 3 * i + 3])[band]
    return color

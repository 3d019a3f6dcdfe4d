"""Procedural motion of the synthetic subject: march in place, turn to profile, squat, turn back.

The motion is a smooth function of time that loops every ``loop_seconds`` (continuously: the
stride count per loop is an integer and every other component returns to its start), so a video
of any length is valid. Angles follow Anny's ``local-ref`` pose deltas (see ``body.py``): a
rotation about a bone's head in world-aligned axes carried by its parent. With the subject facing
-Y, a positive rotation about +X swings a hanging limb backwards and tips an upright one forwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Motion", "MotionParams", "rotation", "smoothstep"]


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """(3, 3) rotation of ``degrees`` about the unit ``axis`` (right-hand rule)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    a = math.radians(degrees)
    return np.eye(3) + math.sin(a) * k + (1.0 - math.cos(a)) * (k @ k)


def _rx(degrees: float) -> np.ndarray:
    return rotation((1.0, 0.0, 0.0), degrees)


def _ry(degrees: float) -> np.ndarray:
    return rotation((0.0, 1.0, 0.0), degrees)


def _rz(degrees: float) -> np.ndarray:
    return rotation((0.0, 0.0, 1.0), degrees)


def smoothstep(edge0: float, edge1: float, x: float) -> float:
    """0 before ``edge0``, 1 after ``edge1``, a C1 cubic in between."""
    s = min(max((x - edge0) / (edge1 - edge0), 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclass(frozen=True)
class MotionParams:
    """The seeded style of the motion. Angles in degrees, times in seconds."""

    loop_seconds: float = 4.0
    strides: int = 4  # march cycles per loop
    phase: float = 0.0  # march phase, radians
    knee_lift: float = 40.0  # hip flexion of the lifted leg
    arm_swing: float = 25.0
    arm_down: float = 38.0  # from Anny's A-pose towards the body
    elbow: float = 15.0  # extra elbow flexion while swinging
    turn: float = 90.0  # signed yaw of the profile view
    squat: float = 40.0  # shin and thigh tilt at the bottom of the squat
    nod: float = 6.0

    @staticmethod
    def sample(rng: np.random.Generator) -> MotionParams:
        """A random but natural-looking variant."""
        return MotionParams(
            strides=int(rng.integers(4, 6)),
            phase=float(rng.uniform(0.0, 2.0 * math.pi)),
            knee_lift=float(rng.uniform(30.0, 45.0)),
            arm_swing=float(rng.uniform(18.0, 32.0)),
            arm_down=float(rng.uniform(34.0, 40.0)),
            elbow=float(rng.uniform(8.0, 22.0)),
            turn=float(rng.choice([-1.0, 1.0]) * rng.uniform(75.0, 100.0)),
            squat=float(rng.uniform(30.0, 45.0)),
            nod=float(rng.uniform(3.0, 8.0)),
        )


class Motion:
    """Pose deltas over time for a skeleton with Anny's bone labels."""

    # Keyframe times of the 4 s script; scaled to loop_seconds.
    _SCRIPT_SECONDS = 4.0

    def __init__(self, params: MotionParams, bone_labels: list[str]) -> None:
        self.params = params
        self.bone_index = {label: i for i, label in enumerate(bone_labels)}
        missing = {"root", "spine05", "neck01", "head"} - set(self.bone_index)
        for side in "LR":
            missing |= {
                f"{b}.{side}" for b in ("upperarm01", "lowerarm01", "upperleg01", "lowerleg01", "foot")
            }
        missing -= set(self.bone_index)
        if missing:
            raise ValueError(f"skeleton lacks bones {sorted(missing)}")
        self.num_bones = len(bone_labels)

    def weights(self, seconds: float) -> dict[str, float]:
        """Activation of each motion component at ``seconds``: march, yaw (0..1), squat (0..1)."""
        s = (seconds % self.params.loop_seconds) * self._SCRIPT_SECONDS / self.params.loop_seconds
        march = (
            1.0
            - 0.4 * smoothstep(1.5, 1.9, s)
            - 0.6 * smoothstep(2.0, 2.4, s)
            + 0.6 * smoothstep(3.2, 3.5, s)
            + 0.4 * smoothstep(3.6, 4.0, s)
        )
        yaw = smoothstep(1.5, 2.3, s) - smoothstep(3.3, 4.0, s)
        squat = math.sin(math.pi * (s - 2.35)) ** 2 if 2.35 <= s <= 3.35 else 0.0
        return {"march": march, "yaw": yaw, "squat": squat}

    def stance(self) -> np.ndarray:
        """(J, 4, 4) deltas of the neutral stance (arms down, legs straight), root at the origin."""
        return self.deltas(0.0, neutral=True)

    def deltas(self, seconds: float, neutral: bool = False) -> np.ndarray:
        """(J, 4, 4) pose deltas at ``seconds``; the root stays at the origin (the scene places it)."""
        p = self.params
        w = {"march": 0.0, "yaw": 0.0, "squat": 0.0} if neutral else self.weights(seconds)
        omega = 2.0 * math.pi * p.strides / p.loop_seconds
        cycle = math.sin(omega * seconds + p.phase)
        # Squared half-waves: each leg lifts in turn, the other stays straight on the floor.
        lift = {"L": max(cycle, 0.0) ** 2 * w["march"], "R": max(-cycle, 0.0) ** 2 * w["march"]}
        swing = {"L": p.arm_swing * cycle * w["march"], "R": -p.arm_swing * cycle * w["march"]}
        squat = p.squat * w["squat"]

        rot: dict[str, np.ndarray] = {"root": _rz(p.turn * w["yaw"])}
        for side, sign in (("L", 1.0), ("R", -1.0)):
            # Arms: down from the A-pose (about Y), swing and squat raise (about X), elbow flexion.
            raise_ = -65.0 * w["squat"]
            rot[f"upperarm01.{side}"] = _rx(swing[side] + raise_) @ _ry(sign * p.arm_down)
            forward = max(-swing[side], 0.0) / max(p.arm_swing, 1e-6)
            rot[f"lowerarm01.{side}"] = _rx(-p.elbow * forward + 10.0 * w["squat"])
            # Legs: march lift, and a squat with equal thigh and shin tilt keeping hips over ankles.
            hip = p.knee_lift * lift[side] + squat
            knee = 1.6 * p.knee_lift * lift[side] + 2.0 * squat
            rot[f"upperleg01.{side}"] = _rx(-hip)
            rot[f"lowerleg01.{side}"] = _rx(knee)
            rot[f"foot.{side}"] = _rx(-0.3 * p.knee_lift * lift[side] - squat)
        rot["spine05"] = _rx(0.6 * squat) @ _rz(-3.0 * cycle * w["march"])
        nod = math.sin(4.0 * math.pi * seconds / p.loop_seconds)  # two nods per loop
        rot["neck01"] = _rx(p.nod * nod * w["march"] - 0.3 * squat)

        out = np.broadcast_to(np.eye(4), (self.num_bones, 4, 4)).copy()
        for label, matrix in rot.items():
            out[self.bone_index[label], :3, :3] = matrix
        return out

    def sequence(self, times: np.ndarray) -> np.ndarray:
        """(B, J, 4, 4) deltas at every time of ``times``."""
        return np.stack([self.deltas(float(t)) for t in np.asarray(times).reshape(-1)])

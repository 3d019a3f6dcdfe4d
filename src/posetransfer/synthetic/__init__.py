"""The synthetic subject: the Anny body in procedural clothes, moving in a static procedural room.

``scene.SyntheticScene`` renders frames with exact ground truth (mask, mesh face and barycentrics,
BODY_25 keypoints with visibility, vertices). ``body`` wraps the Anny model, ``motion`` makes the
pose sequence, ``appearance`` the clothing, skin and room textures.
"""

from posetransfer.synthetic.scene import SceneSpec, SyntheticFrame, SyntheticScene

__all__ = ["SceneSpec", "SyntheticFrame", "SyntheticScene"]

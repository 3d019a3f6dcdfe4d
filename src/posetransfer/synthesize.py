"""The synthesize stage: render the synthetic subject to an H.264 video plus its ground truth.

The ground-truth cache holds, per frame: the person mask, the body-mesh face and barycentric
coordinates of every pixel, the BODY_25 keypoints with visibility and the mesh vertices, plus
the camera; later stages derive IUV, 3D labels and the true optical flow from them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posetransfer import cache
from posetransfer.devices import resolve_device
from posetransfer.keypoints import draw_skeleton
from posetransfer.progress import progress
from posetransfer.video import write_h264

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticParams:
    """The ``synthetic`` config section plus the subject's seed."""

    width: int = 640
    height: int = 480
    num_frames: int = 96
    fps: float = 24.0
    seed: int = 0

    @classmethod
    def from_config(cls, section: Mapping[str, Any], seed: int) -> SyntheticParams:
        return cls(**section, seed=seed)


def build_model_cache(cache_dir: str | Path, marker: str | Path) -> None:
    """Build Anny's model cache once (about 45 s, 790 MB); write ``marker`` when it is complete."""
    cache_dir, marker = Path(cache_dir), Path(marker)
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ANNY_CACHE_DIR"] = str(cache_dir.resolve())
    import anny  # must follow ANNY_CACHE_DIR

    log.info("building the Anny body model in %s (first time about 45 s)", cache_dir)
    model = anny.Anny()
    vertices = int(model.template_vertices.shape[-2]) if hasattr(model, "template_vertices") else -1
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text(
        f"anny {anny.__version__}\nvertices {vertices}\nbuilt {dt.datetime.now(tz=dt.UTC).isoformat()}\n"
    )
    os.replace(tmp, marker)
    log.info("body model ready: %s", marker)


def run(
    video: str | Path,
    truth: str | Path,
    preview_mp4: str | Path,
    params: SyntheticParams,
    anny_cache: str | Path,
    device: str = "auto",
    preview_seconds: float = 4.0,
) -> None:
    """Render every frame once: RGB into ``video``, ground truth into ``truth``, then a preview."""
    from posetransfer.synthetic.scene import SceneSpec, SyntheticScene

    spec = SceneSpec(
        width=params.width,
        height=params.height,
        num_frames=params.num_frames,
        fps=params.fps,
        seed=params.seed,
    )
    scene = SyntheticScene(spec, cache_dir=Path(anny_cache), device=resolve_device(device))
    count, size = len(scene), (params.height, params.width)
    log.info("rendering %d frames of %dx%d at %.2f fps, seed %d", count, *size[::-1], params.fps, params.seed)
    with cache.write_cache(truth, "synthetic_truth", asdict(params), source_sha256="") as writer:
        masks = writer.frame_dataset("mask", count, size, bool)
        faces = writer.frame_dataset("face", count, size, np.int32)
        barys = writer.frame_dataset("bary", count, (*size, 2), np.float32)
        keypoints = np.zeros((count, 25, 3), np.float32)
        vertices = None

        def frames() -> Iterator[np.ndarray]:
            nonlocal vertices
            for index in progress(range(count), count, "render"):
                frame = scene.frame(index)
                masks[index], faces[index], barys[index] = frame.mask, frame.face, frame.bary
                keypoints[index] = frame.keypoints
                if vertices is None:
                    vertices = writer.frame_dataset("vertices", count, frame.vertices.shape, np.float32)
                vertices[index] = frame.vertices
                yield frame.rgb

        write_h264(video, frames(), fps=params.fps, crf=18)
        writer.array("keypoints", keypoints)
        writer.array("faces", np.asarray(scene.faces, dtype=np.int32))
        writer.array("background", np.asarray(scene.background, dtype=np.uint8))
        camera = scene.camera
        writer.attrs.update(
            {
                "source_sha256": cache.file_sha256(video),
                "fps": float(params.fps),
                "width": params.width,
                "height": params.height,
                "camera_K": np.array(
                    [[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]], dtype=np.float64
                ),
                "camera_R": np.asarray(camera.rotation, dtype=np.float64),
                "camera_t": np.asarray(camera.translation, dtype=np.float64),
                "keypoint_order": "OpenPose BODY_25; x, y in pixels (pixel centres at +0.5), visibility",
            }
        )
    log.info("wrote %s and %s", video, truth)
    write_preview(video, truth, preview_mp4, preview_seconds)


def overlay_truth(rgb: np.ndarray, mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The frame with its mask outline (white) and BODY_25 skeleton drawn over it."""
    image = rgb.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, (255, 255, 255), 1)
    return draw_skeleton(image, keypoints, threshold=0.5)


def write_preview(video: str | Path, truth: str | Path, preview_mp4: str | Path, seconds: float) -> None:
    """First ``seconds`` of the render beside its ground truth, as a small H.264 MP4."""
    from posetransfer.video import read_frames

    with cache.open_cache(truth, "synthetic_truth") as opened:
        fps = float(opened.attrs["fps"])
        count = min(len(opened.dataset("mask")), max(1, round(seconds * fps)))
        masks = opened.read("mask", slice(0, count))
        keypoints = opened.read("keypoints", slice(0, count))

    def side_by_side() -> Iterator[np.ndarray]:
        for index, rgb in enumerate(read_frames(video)):
            if index >= count:
                return
            yield np.concatenate([rgb, overlay_truth(rgb, masks[index], keypoints[index])], axis=1)

    write_h264(preview_mp4, side_by_side(), fps=fps)

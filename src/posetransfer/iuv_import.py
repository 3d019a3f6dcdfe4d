"""IUV from outside the body fit (``iuv.backend``): a folder of DensePose IUV PNGs, or DensePose itself.

Both give the same arrays as the body fit's IUV (:func:`posetransfer.iuv.from_densepose_png`):
``I`` (N, H, W) uint8 part indices and ``U``, ``V`` float32 in [0, 1].
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from posetransfer.errors import ConfigError, PosetransferError
from posetransfer.iuv import NUM_PARTS, from_densepose_png


def _natural_key(path: Path) -> list[int | str]:
    """Sort key putting ``frame_2.png`` before ``frame_10.png``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def import_folder(
    folder: str | Path, count: int, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IUV of ``count`` frames from a folder of DensePose IUV PNGs, one per frame, in natural name order.

    ``size`` is the frames' side (square crops) or ``(height, width)``. Returns ``I`` ``(N, H, W)``
    uint8 and ``U``, ``V`` float32. Any problem (missing folder, wrong count, unreadable file, wrong
    size, not an IUV image) raises a one-line :class:`PosetransferError` naming the file.
    """
    folder = Path(folder)
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if not folder.is_dir():
        raise PosetransferError("IUV import folder does not exist", folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=_natural_key)
    if len(files) != count:
        raise PosetransferError(f"expected {count} IUV PNGs (one per frame), found {len(files)}", folder)
    images = np.zeros((count, height, width, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise PosetransferError("unreadable image", path)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PosetransferError(
                f"not an 8-bit 3-channel IUV image (shape {image.shape}, {image.dtype})", path
            )
        if image.shape[:2] != (height, width):
            raise PosetransferError(
                f"image is {image.shape[1]}x{image.shape[0]}, expected {width}x{height} like the frames", path
            )
        if int(image[..., 0].max()) > NUM_PARTS:
            raise PosetransferError(
                f"channel 0 holds {int(image[..., 0].max())} > {NUM_PARTS}: not a DensePose IUV image", path
            )
        images[i] = image
    return from_densepose_png(images)


_DETECTRON2_HELP = (
    "iuv.backend 'densepose' needs detectron2 and its DensePose project, which are not installed "
    "(detectron2 publishes no wheel for Python 3.11): build detectron2 from source following "
    "https://detectron2.readthedocs.io/en/latest/tutorials/install.html "
    "(python -m pip install 'git+https://github.com/facebookresearch/detectron2.git'), then "
    "python -m pip install "
    "'git+https://github.com/facebookresearch/detectron2@main#subdirectory=projects/DensePose', "
    "and set iuv.densepose_config and iuv.densepose_weights to a DensePose config and its weights; "
    "or use iuv.backend: import"
)


def _import_densepose():  # -> (get_cfg, DefaultPredictor, add_densepose_config, DensePoseResultExtractor)
    """detectron2 and DensePose's pieces, or a one-line ConfigError saying how to install them."""
    try:
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor
    except ImportError as error:
        raise ConfigError(_DETECTRON2_HELP) from error
    try:
        from densepose import add_densepose_config
        from densepose.vis.extractor import DensePoseResultExtractor
    except ImportError:
        try:
            from detectron2.projects.densepose import add_densepose_config
            from detectron2.projects.densepose.vis.extractor import DensePoseResultExtractor
        except ImportError as error:
            raise ConfigError(_DETECTRON2_HELP) from error
    return get_cfg, DefaultPredictor, add_densepose_config, DensePoseResultExtractor


def densepose_predict(
    frames: np.ndarray, config: str | Path, weights: str | Path, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IUV of RGB ``frames`` ``(N, H, W, 3)`` uint8 by detectron2's DensePose (the user's config, weights).

    The highest-scoring person of each frame is kept; frames without one are all background. U and V
    are then in DensePose's SMPL-based charts, not Anny's: do not mix the two in one subject.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    get_cfg, default_predictor, add_densepose_config, extractor = _import_densepose()
    for key, path in (("iuv.densepose_config", config), ("iuv.densepose_weights", weights)):
        if not os.path.isfile(path):
            raise ConfigError(f"{key}: file {path} does not exist")
    cfg = get_cfg()
    add_densepose_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    predictor = default_predictor(cfg)
    extract = extractor()
    n, height, width = frames.shape[:3]
    part = np.zeros((n, height, width), dtype=np.uint8)
    u = np.zeros((n, height, width), dtype=np.float32)
    v = np.zeros((n, height, width), dtype=np.float32)
    for i, rgb in enumerate(frames):
        instances = predictor(np.ascontiguousarray(rgb[..., ::-1]))["instances"].to("cpu")
        if len(instances) == 0 or not instances.has("pred_densepose"):
            continue
        best = instances[int(instances.scores.argmax())]
        results, boxes = extract(best)
        if not results:
            continue
        _paste(results[0], boxes[0], part[i], u[i], v[i])
    return part, u, v


def _paste(result, box, part: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Write one DensePoseChartResult (box-sized labels and uv) into full-frame I, U, V."""
    x, y, w, h = (int(t) for t in box)
    labels = result.labels.cpu().numpy().astype(np.uint8)
    uv = result.uv.clamp(0, 1).cpu().numpy()
    h, w = min(h, labels.shape[0]), min(w, labels.shape[1])
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, part.shape[0]), min(x + w, part.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    crop = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    fg = labels[crop] > 0
    part[y0:y1, x0:x1] = labels[crop]
    u[y0:y1, x0:x1] = np.where(fg, uv[0][crop], 0)
    v[y0:y1, x0:x1] = np.where(fg, uv[1][crop], 0)

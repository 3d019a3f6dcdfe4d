"""The synthetic subject as written to disk: its video agrees with its ground truth."""

import cv2
import numpy as np

from posetransfer import cache
from posetransfer.video import probe, read_frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_truth_mask_matches_the_rendered_video(synthetic_clip):
    video, truth = synthetic_clip
    with cache.open_cache(truth, "synthetic_truth") as gt:
        masks, background = gt.read("mask"), gt.read("background")
        assert gt.attrs["source_sha256"] == cache.file_sha256(video)
    decoded = np.stack(list(read_frames(video)))
    assert decoded.shape[:3] == masks.shape == (probe(video).container_frames, 384, 320)
    for index, (rgb, mask) in enumerate(zip(decoded, masks, strict=True)):
        # Away from the silhouette's edge (H.264 blurs it), off-mask pixels are the static
        # background and on-mask pixels are not.
        kernel = np.ones((7, 7), np.uint8)
        outside = cv2.dilate(mask.astype(np.uint8), kernel) == 0
        inside = cv2.erode(mask.astype(np.uint8), kernel) == 1
        assert _psnr(rgb[outside], background[outside]) > 32, f"frame {index}: background differs"
        person_change = np.abs(rgb[inside].astype(int) - background[inside].astype(int)).sum(axis=-1)
        assert np.mean(person_change > 30) > 0.8, f"frame {index}: mask covers background"

"""Small pictures people look at instead of reading numbers: contact sheets and labelled tiles."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def fit_tile(image: np.ndarray, size: int) -> np.ndarray:
    """Scale an RGB image to fit a size x size tile, letterboxed in dark grey."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    resized = cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    tile = np.full((size, size, 3), 32, dtype=np.uint8)
    top, left = (size - resized.shape[0]) // 2, (size - resized.shape[1]) // 2
    tile[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return tile


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner, white on a dark band."""
    image = image.copy()
    scale = max(0.35, image.shape[0] / 512)
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(image, (0, 0), (text_w + 6, text_h + baseline + 6), (0, 0, 0), thickness=-1)
    cv2.putText(
        image, text, (3, text_h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return image


def contact_sheet(
    images: Sequence[np.ndarray], labels: Sequence[str], tile: int = 192, columns: int = 4
) -> np.ndarray:
    """Lay out labelled tiles in a grid."""
    if not images:
        raise ValueError("contact sheet needs at least one image")
    tiles = [label(fit_tile(image, tile), text) for image, text in zip(images, labels, strict=True)]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (tile + 4) + 4, columns * (tile + 4) + 4, 3), 16, dtype=np.uint8)
    for index, item in enumerate(tiles):
        row, col = divmod(index, columns)
        top, left = 4 + row * (tile + 4), 4 + col * (tile + 4)
        sheet[top : top + tile, left : left + tile] = item
    return sheet


def evenly_spaced(count: int, picks: int) -> list[int]:
    """Up to ``picks`` distinct indices spread over range(count), first and last included."""
    if count <= picks:
        return list(range(count))
    return sorted({round(i * (count - 1) / (picks - 1)) for i in range(picks)}) if picks > 1 else [0]


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB image as PNG atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: could not write PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

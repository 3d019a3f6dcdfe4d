"""IUV from outside the body fit: a folder of DensePose PNGs, and the DensePose backend's message."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from posetransfer import iuv_import
from posetransfer.errors import ConfigError, PosetransferError


def _write_iuv(folder: Path, names: list[str], size: tuple[int, int] = (24, 16)) -> list[np.ndarray]:
    folder.mkdir(exist_ok=True)
    images = []
    for k, name in enumerate(names):
        image = np.zeros((*size, 3), np.uint8)
        image[4:10, 3:9] = (k + 1, 100 + k, 200 - k)
        cv2.imwrite(str(folder / name), image)
        images.append(image)
    return images


def test_import_folder_reads_frames_in_natural_order(tmp_path: Path) -> None:
    _write_iuv(tmp_path / "iuv", ["frame_2.png", "frame_10.png", "frame_1.png"])
    part, u, v = iuv_import.import_folder(tmp_path / "iuv", count=3, size=(24, 16))
    assert part.shape == (3, 24, 16) and u.dtype == np.float32
    # frame_1 was written third (part 3), frame_2 first (part 1), frame_10 second (part 2).
    assert [int(p.max()) for p in part] == [3, 1, 2]
    assert u[1, 5, 5] == pytest.approx(100 / 255) and v[1, 5, 5] == pytest.approx(200 / 255)


def _one_line_error(error: pytest.ExceptionInfo, *needles: str) -> None:
    text = str(error.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text


def test_import_folder_errors_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "iuv"
    _write_iuv(folder, ["a.png", "b.png"])
    with pytest.raises(PosetransferError) as error:
        iuv_import.import_folder(folder, count=3, size=(24, 16))
    _one_line_error(error, str(folder), "expected 3", "found 2")
    with pytest.raises(PosetransferError) as error:
        iuv_import.import_folder(folder, count=2, size=32)
    _one_line_error(error, "a.png", "16x24", "32x32")
    (folder / "b.png").write_bytes(b"not a png")
    with pytest.raises(PosetransferError) as error:
        iuv_import.import_folder(folder, count=2, size=(24, 16))
    _one_line_error(error, "b.png", "unreadable")
    bad = np.full((24, 16, 3), 30, np.uint8)  # channel 0 = 30 > 24: not a part index
    cv2.imwrite(str(folder / "b.png"), bad)
    with pytest.raises(PosetransferError) as error:
        iuv_import.import_folder(folder, count=2, size=(24, 16))
    _one_line_error(error, "b.png", "not a DensePose IUV image")
    with pytest.raises(PosetransferError) as error:
        iuv_import.import_folder(tmp_path / "missing", count=2, size=16)
    _one_line_error(error, "missing")


@pytest.mark.skipif(importlib.util.find_spec("detectron2") is not None, reason="detectron2 is installed")
def test_densepose_backend_says_how_to_install_detectron2(tmp_path: Path) -> None:
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ConfigError) as error:
        iuv_import.densepose_predict(frames, tmp_path / "config.yaml", tmp_path / "model.pkl")
    _one_line_error(error, "detectron2", "from source", "iuv.densepose_config", "iuv.densepose_weights")

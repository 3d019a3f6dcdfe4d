"""The standalone subject report: tables from the metrics files, embedded pictures, linked videos."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from posetransfer import outputs, preview, report, video


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """results/{subject} with two evaluated variants and one transfer, as the workflow leaves them."""
    subject = tmp_path / "results" / "alice"
    outputs.write_json(subject / "evaluation/metrics.json", {"variant": "full", "ssim": 0.9, "psnr": 30.0,
                       "frames": 10, "resolution": 64, "robust_frames": [1, 2], "fid": None,
                       "fid_unavailable": "FID unavailable: no InceptionV3 weights",
                       "baseline_body_lookup": {"ssim": 0.7, "psnr": 21.0},
                       "seen_poses": {"frames": 10, "ssim": 0.95, "psnr": 33.0},
                       "ceiling_real_person": {"ssim": 0.99, "psnr": 40.0}})  # fmt: skip
    outputs.write_json(
        subject / "evaluation-no_d2g/metrics.json", {"variant": "no_d2g", "ssim": 0.8, "psnr": 25.5}
    )
    picture = np.zeros((40, 60, 3), np.uint8)
    picture[:, :30] = (255, 128, 0)
    for name in ("model/loss_curve.png", "model/samples.png", "evaluation/samples.png"):
        preview.save_png(subject / name, picture)
    folder = tmp_path / "results/transfer/bob_to_alice"
    video.write_h264(folder / "video.mp4", [picture] * 4, fps=10)
    transferred = {"driving": "bob", "target": "alice", "frames": 4, "fps": 10.0, "render_ms_per_frame": 12.5}
    transferred.update(
        resolution=64, background="target", fid=None, fid_unavailable="FID unavailable: no weights"
    )
    outputs.write_json(folder / "metrics.json", transferred)
    return subject


def test_report_tables_pictures_and_videos(results):
    out = results / "report.html"
    report.write_subject_report(results, out, [results.parent / "transfer/bob_to_alice"])
    page = out.read_text()
    ablation = page[page.index("Ablation") :]
    assert re.search(r"<td>full</td><td>0\.900</td><td>30\.00</td>", ablation)
    assert re.search(r"<td>no_d2g</td><td>0\.800</td><td>25\.50</td>", ablation)
    # the baselines that say where the error lies: no training, seen poses, the mask's ceiling
    for row in (
        "body-IUV lookup, no training</td><td>0.700</td><td>21.00",
        "full on training frames (seen poses)</td><td>0.950</td><td>33.00",
        "real person over the inpainted background (ceiling)</td><td>0.990</td><td>40.00",
    ):
        assert row in ablation
    assert "paper, Table 1" in page and "FID unavailable" in page
    sources = re.findall(r'src="([^"]+)"', page)
    # loss curves, two sample grids, the ablation bar chart (matplotlib); robust.png is absent
    assert sum(source.startswith("data:image/png;base64,") for source in sources) == 4
    assert 'alt="ablation: one bar chart per metric"' in ablation
    assert "challenging poses: not made in this run" in page
    linked = [source for source in sources if not source.startswith("data:")]
    assert linked == ["../transfer/bob_to_alice/video.mp4"] and (out.parent / linked[0]).is_file()
    assert "12.5 ms/frame" in page


def test_report_without_variants_says_how_to_get_the_ablation(results):
    shutil.rmtree(results / "evaluation-no_d2g")
    out = results / "report.html"
    report.write_subject_report(results, out, [])
    page = out.read_text()
    assert "evaluation.variants" in page and "No transfer targets this subject" in page


def test_report_renders_in_a_headless_browser(results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(
            "chromium is not installed (Debian: apt install chromium); the HTML checks above still ran"
        )
    out = results / "report.html"
    report.write_subject_report(results, out, [results.parent / "transfer/bob_to_alice"])
    shot = tmp_path / "shot.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += ["--window-size=1000,1400", f"--screenshot={shot}", out.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1400, 1000)
    orange = (np.abs(image.astype(int) - (0, 128, 255)).sum(-1) < 40).sum()  # BGR of the test picture
    assert orange > 1000  # the embedded pictures were decoded and drawn
    assert json.loads((results / "evaluation/metrics.json").read_text())["variant"] == "full"

"""Charts made with matplotlib: loss curves from losses.csv and the report's ablation bars."""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest

from posetransfer import plots


def write_losses(path, steps: int = 120) -> None:
    """A losses.csv as training writes it: long format, one row per step and term."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "epoch", "name", "value"])
        for step in range(1, steps + 1):
            terms = {
                "total": 50 * np.exp(-step / 40) + rng.uniform(0, 2),
                "l2": 5 * np.exp(-step / 30) * rng.uniform(0.5, 1.5),
                "gan": rng.uniform(0.2, 0.4),
                "temporal": 0.0,  # switched off: cannot sit on a log axis
            }
            for name, value in terms.items():
                writer.writerow([step, (step - 1) // 30, name, f"{value:.6g}"])


def decode(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_loss_curves_have_axes_legend_log_scale_and_smoothing(tmp_path):
    write_losses(tmp_path / "losses.csv")
    figure = plots.loss_figure(plots.read_losses(tmp_path / "losses.csv"))
    (axes,) = figure.axes
    assert axes.get_yscale() == "log" and axes.get_xlabel() == "step"
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["total", "gan", "l2"]
    raw, smooth = axes.lines[0], axes.lines[1]  # total: the faint raw line under its EMA
    assert raw.get_alpha() < 0.5 and smooth.get_alpha() is None
    assert np.std(np.diff(smooth.get_ydata())) < np.std(np.diff(raw.get_ydata()))
    assert "always 0" in figure.texts[0].get_text() and "temporal" in figure.texts[0].get_text()

    plots.plot_losses(tmp_path / "losses.csv", tmp_path / "curve.png")
    image = decode((tmp_path / "curve.png").read_bytes())
    assert image.shape == (550, 1000, 3) and (image < 128).mean() > 0.01  # drawn, not blank
    plots.plot_losses(tmp_path / "losses.csv", tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "curve.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.png", "curve.png", "losses.csv"]


def test_ema_is_debiased_and_follows_a_constant():
    np.testing.assert_allclose(plots.ema(np.full(10, 3.0), 0.9), 3.0)
    assert plots.ema(np.array([5.0, 1.0]), 0.9)[0] == 5.0
    assert plots.smoothing_weight(10) == 0.0 and plots.smoothing_weight(100_000) == 0.95


def test_ablation_chart_has_one_panel_per_metric_with_the_runs_values():
    runs = [
        ("full", {"ssim": 0.83, "psnr": 22.5, "fid": None, "temporal_error": 0.0034}),
        ("no_d2g", {"ssim": 0.84, "psnr": 22.8, "temporal_error": 0.0035}),
        ("pose_to_image", {"ssim": 0.73, "psnr": 21.6, "temporal_error": 0.0053}),
    ]
    metrics = [("ssim", "SSIM"), ("psnr", "PSNR (dB)"), ("fid", "FID"), ("temporal_error", "E_temp")]
    figure = plots.ablation_figure(runs, metrics, lower_is_better={"temporal_error", "fid"})
    assert [axes.get_title() for axes in figure.axes] == [
        "SSIM (higher is better)",
        "PSNR (dB) (higher is better)",
        "E_temp (lower is better)",
    ]  # FID: no run has it
    widths = [patch.get_width() for patch in figure.axes[1].patches]
    assert widths == pytest.approx([22.5, 22.8, 21.6])
    assert [label.get_text() for label in figure.axes[0].get_yticklabels()] == [name for name, _ in runs]
    image = decode(plots.ablation_png(runs, metrics))
    assert image.shape[1] == 3 * 320 and (image < 128).mean() > 0.005
    assert plots.ablation_png(runs, [("lpips", "LPIPS")]) is None


def test_png_bytes_carry_no_software_version():
    figure = plots.ablation_png([("a", {"ssim": 0.5})], [("ssim", "SSIM")])
    assert b"matplotlib" not in figure and io.BytesIO(figure).read(8) == b"\x89PNG\r\n\x1a\n"

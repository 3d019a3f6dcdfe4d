"""Charts drawn with matplotlib: training loss curves and the report's ablation bars.

Figures are built as :class:`matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``: no display, no global backend or figure state, safe in a Snakemake job or a thread.
PNGs carry no ``Software`` text chunk, so the same numbers give the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

PNG_METADATA = {"Software": None}  # no version string in the file: bytes depend on the data only
DPI = 100


def read_losses(csv_path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``losses.csv`` (long format: ``step,epoch,name,value``) as ``{name: (steps, values)}``."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            steps, values = series.setdefault(row["name"], ([], []))
            steps.append(int(row["step"]))
            values.append(float(row["value"]))
    return {
        name: (np.array(steps), np.array(values, dtype=np.float64))
        for name, (steps, values) in series.items()
    }


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased so it starts at the first value."""
    smoothed = np.empty_like(values, dtype=np.float64)
    running = 0.0
    for index, value in enumerate(values):
        running = weight * running + (1.0 - weight) * value
        smoothed[index] = running / (1.0 - weight ** (index + 1))
    return smoothed


def smoothing_weight(count: int) -> float:
    """EMA weight for ``count`` points: about 1/20 of the run per time constant, at most 0.95."""
    return float(np.clip(1.0 - 20.0 / max(count, 1), 0.0, 0.95))


def _save(figure: Figure, png: str | Path) -> None:
    """Write the figure as PNG under a temporary name, then rename."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp")
    try:
        figure.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
        os.replace(tmp, png)
    finally:
        tmp.unlink(missing_ok=True)


def loss_figure(series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Every loss term against the step, log y: the raw values faint, their EMA on top."""
    figure = Figure(figsize=(10, 5.5), layout="constrained")
    axes = figure.add_subplot()
    colours = [f"C{index}" for index in range(10)]
    names = sorted(series, key=lambda name: (name != "total", name))  # total first: the headline
    left_out = []
    for index, name in enumerate(names):
        steps, values = series[name]
        positive = values > 0  # a log axis shows only these; a term that is 0 throughout is listed below
        if not positive.any():
            left_out.append(name)
            continue
        colour, width = ("black", 2.0) if name == "total" else (colours[index % 10], 1.3)
        shown = np.where(positive, values, np.nan)
        axes.plot(steps, shown, color=colour, alpha=0.2, linewidth=0.8)
        smooth_from = values[positive]
        axes.plot(steps[positive], ema(smooth_from, smoothing_weight(len(smooth_from))), color=colour,
                  linewidth=width, label=name)  # fmt: skip
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (log scale)")
    last = max((int(steps[-1]) for steps, _ in series.values() if len(steps)), default=0)
    axes.set_title(f"training losses over {last} steps: faint raw, solid smoothed (EMA)")
    axes.grid(True, which="major", alpha=0.4)
    axes.grid(True, which="minor", alpha=0.12)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    if left_out:
        figure.text(0.01, 0.005, f"always 0 (not on a log axis): {', '.join(left_out)}", fontsize="small")
    return figure


def plot_losses(csv_path: str | Path, png_path: str | Path) -> None:
    """The loss curves of a ``losses.csv`` (as :mod:`posetransfer.training` writes it) as a PNG."""
    _save(loss_figure(read_losses(csv_path)), png_path)


def ablation_figure(
    runs: Sequence[tuple[str, Mapping[str, Any]]],
    metrics: Sequence[tuple[str, str]],
    lower_is_better: Collection[str] = (),
) -> Figure | None:
    """One small bar chart per metric (``(key, title)``), one bar per run; ``None`` with nothing to show."""
    shown = [(key, title) for key, title in metrics if any(_number(m.get(key)) for _, m in runs)]
    if not shown or not runs:
        return None
    columns = min(4, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure = Figure(figsize=(3.2 * columns, 0.35 * len(runs) + 2.2 * rows), layout="constrained")
    names = [name for name, _ in runs]
    for index, (key, title) in enumerate(shown):
        axes = figure.add_subplot(rows, columns, index + 1)
        values = [m.get(key) if _number(m.get(key)) else np.nan for _, m in runs]
        positions = np.arange(len(runs))
        bars = axes.barh(positions, values, color=[f"C{i % 10}" for i in range(len(runs))])
        axes.bar_label(bars, fmt="%.3g", padding=2, fontsize="small")
        axes.set_yticks(positions, names if index % columns == 0 else [""] * len(names))
        axes.invert_yaxis()  # first run on top, as in the table
        better = "lower" if key in lower_is_better else "higher"
        axes.set_title(f"{title} ({better} is better)", fontsize="medium")
        axes.margins(x=0.25)
        axes.grid(True, axis="x", alpha=0.3)
    return figure


def ablation_png(
    runs: Sequence[tuple[str, Mapping[str, Any]]],
    metrics: Sequence[tuple[str, str]],
    lower_is_better: Collection[str] = (),
) -> bytes | None:
    """:func:`ablation_figure` as PNG bytes (for embedding in the report), or ``None``."""
    figure = ablation_figure(runs, metrics, lower_is_better)
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buffer.getvalue()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

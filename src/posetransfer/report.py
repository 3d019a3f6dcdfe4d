"""A subject's standalone HTML report: metrics, ablation table, loss curves, frames and videos.

``results/{subject}/report.html`` is one file to open in a browser: pictures are embedded (data
URIs) so it can be mailed or archived alone; transfer videos are linked by relative path
(``../transfer/...``), so they play while the page sits in its results folder.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posetransfer import cache, outputs

log = logging.getLogger(__name__)

# Table 1 of the paper (its own method, 512 px, 30 epochs, its 10 subjects) for orientation.
PAPER_ROW = {
    "ssim": 0.931,
    "psnr": 37.38,
    "robust_ssim": 0.928,
    "robust_psnr": 36.93,
    "temporal_error": 0.42,
    "fid": 53.85,
}
# (key, column title, digits) of the metric and ablation tables, in the paper's order.
COLUMNS = (
    ("ssim", "SSIM", 3),
    ("psnr", "PSNR (dB)", 2),
    ("ssim_box", "SSIM (box)", 3),
    ("psnr_box", "PSNR box (dB)", 2),
    ("robust_ssim", "Robust-SSIM", 3),
    ("robust_psnr", "Robust-PSNR (dB)", 2),
    ("temporal_error", "E_temp", 4),
    ("lpips", "LPIPS", 3),
    ("fid", "FID", 2),
    ("render_ms_per_frame", "ms/frame (CPU)", 1),
)
LOWER_IS_BETTER = {"temporal_error", "lpips", "fid", "render_ms_per_frame"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { padding: 4px 10px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #f7f7f7; } img, video { max-width: 100%; }
.note { color: #666; font-size: 90%; }
"""


def _image(path: Path, alt: str) -> str:
    """An <img> with the PNG embedded, or a note where the file is absent."""
    if not path.is_file():
        return f'<p class="note">({html.escape(alt)}: not made in this run)</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def ablation_chart(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The ablation table as one matplotlib bar chart per metric, embedded as a PNG."""
    from posetransfer.plots import ablation_png

    png = ablation_png(runs, [(key, title) for key, title, _ in COLUMNS], LOWER_IS_BETTER)
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="ablation: one bar chart per metric">'


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "&mdash;"
    return f"{value:.{digits}f}" if isinstance(value, int | float) else html.escape(str(value))


def metric_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """An HTML table: one row per (name, metrics), the COLUMNS present in any row."""
    columns = [c for c in COLUMNS if any(c[0] in metrics for _, metrics in rows)]
    head = "".join(f"<th>{title}</th>" for _, title, _ in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{_cell(metrics.get(key), digits)}</td>" for key, _, digits in columns)
        + "</tr>"
        for name, metrics in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def variant_runs(subject_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(variant, metrics) of every evaluated model of the subject: the main one first."""
    runs = []
    for folder in sorted(subject_dir.glob("evaluation*"), key=lambda p: (p.name != "evaluation", p.name)):
        path = folder / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            suffix = folder.name[len("evaluation") :].lstrip("-")
            runs.append((suffix or metrics.get("variant") or "main", metrics))
    return runs


def reference_rows(runs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The rows beside the trained variants that say where the error lies (from the main run)."""
    if not runs:
        return []
    main_name, main = runs[0]
    references = (
        ("baseline_body_lookup", "body-IUV lookup, no training"),  # what training has to beat
        ("seen_poses", f"{main_name} on training frames (seen poses)"),  # the generalisation gap
        ("ceiling_real_person", "real person over the inpainted background (ceiling)"),
    )
    return [(name, main[key]) for key, name in references if key in main]


def _transfer_section(subject_dir: Path, folder: Path, out_dir: Path) -> str:
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    title = f"{metrics.get('driving', folder.name)} &rarr; {metrics.get('target', subject_dir.name)}"
    parts = [f"<h3>{title}</h3>"]
    for name, caption in (
        ("video.mp4", "driving | normalised skeleton | ours"),
        ("pasted.mp4", "pasted back"),
    ):
        video = folder / name
        if video.is_file():
            source = html.escape(os.path.relpath(video, out_dir))
            parts.append(
                f'<figure><video controls loop muted autoplay playsinline src="{source}"></video>'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    if metrics:
        fid = f"{metrics['fid']:.2f}" if metrics.get("fid") is not None else metrics.get("fid_unavailable")
        parts.append(
            f'<p class="note">{metrics.get("frames")} frames at {metrics.get("fps", 0):.2f} fps; '
            f"rendering {metrics.get('render_ms_per_frame', 0):.1f} ms/frame at "
            f"{metrics.get('resolution')} px; background: {html.escape(str(metrics.get('background')))}; "
            f"FID: {html.escape(str(fid))}</p>"
        )
    return "\n".join(parts)


# Caches whose stages record warnings about the input (a second person, legs out of view, ...).
WARNING_CACHES = ("frames.h5", "pose2d.h5", "body3d.h5")


def warnings_section(subject_dir: Path) -> list[str]:
    """A "Warnings" heading and list: what the stages noticed about the input; none when clean."""
    found = [warning for name in WARNING_CACHES for warning in cache.read_warnings(subject_dir / name)]
    if not found:
        return []
    items = "".join(f"<li>{html.escape(warning)}</li>" for warning in found)
    return ['<h2 id="warnings">Warnings</h2>', f'<ul class="warnings">{items}</ul>']


def write_subject_report(
    subject_dir: str | Path, out: str | Path, transfers: Sequence[str | Path] = ()
) -> None:
    """Write the standalone report of one subject (``results/{subject}``) to ``out``."""
    subject_dir, out = Path(subject_dir), Path(out)
    runs = variant_runs(subject_dir)
    main = runs[0][1] if runs else {}
    fid_note = next((m.get("fid_unavailable") for _, m in runs if m.get("fid_unavailable")), None)
    sections = [
        f"<h1>posetransfer report: {html.escape(subject_dir.name)}</h1>",
        *warnings_section(subject_dir),
        "<h2>Self-transfer on the validation frames</h2>",
        f'<p class="note">{main.get("frames", 0)} validation frames (the last 10%, never trained on) at '
        f"{main.get('resolution', '?')} px. Robust metrics: the {len(main.get('robust_frames', []))} "
        "frames whose poses are farthest from every training pose. E_temp: Eq. 10, warped under the "
        "real frames' optical flow.</p>",
        metric_table([*runs[:1], ("paper, Table 1 (512 px, 30 epochs)", PAPER_ROW)]),
    ]
    if fid_note:
        sections.append(f'<p class="note">{html.escape(fid_note)}</p>')
    for name, metrics in runs:
        if metrics.get("loss_terms"):
            terms = ", ".join(metrics["loss_terms"])
            sections.append(f'<p class="note">{html.escape(name)}: trained with {html.escape(terms)}.</p>')
    rows = runs + reference_rows(runs)
    sections += [
        "<h2>Ablation (the paper's Tables 1-3)</h2>",
        metric_table(rows) if len(rows) > 1 else "",
        ""
        if len(runs) > 1
        else '<p class="note">Only one variant was trained; list more '
        "in the config's evaluation.variants (e.g. [no_d2g, pose_to_image]) for this table.</p>",
        ablation_chart(rows) if len(rows) > 1 else "",
        "<h2>Training</h2>",
        _image(subject_dir / "model" / "loss_curve.png", "loss curves"),
        _image(subject_dir / "model" / "samples.png", "training samples"),
        "<h2>Validation frames: real | ours | error</h2>",
        _image(subject_dir / "evaluation" / "samples.png", "validation samples"),
        "<h2>Challenging poses</h2>",
        _image(subject_dir / "evaluation" / "robust.png", "challenging poses"),
        "<h2>Pose transfer</h2>",
    ]
    sections += [_transfer_section(subject_dir, Path(folder), out.parent) for folder in transfers] or [
        '<p class="note">No transfer targets this subject (config transfer.pairs).</p>'
    ]
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>posetransfer: {html.escape(subject_dir.name)}</title><style>{STYLE}</style></head>"
        f"<body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    outputs.write_text(out, page)
    log.info("wrote %s: %d trained variant(s), %d transfer(s)", out, len(runs), len(transfers))

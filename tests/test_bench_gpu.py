"""bench/gpu.py, the GPU check, runs end to end at its small size on the CPU (every row measured)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUMBER = r"\d+(\.\d+)?"


def table_rows(output: str) -> dict[tuple[str, str], list[str]]:
    """The printed Markdown table as {(what, setting): [result, memory, note]}."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] not in ("what", "---"):
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_gpu_check_runs_small_on_cpu(anny_cache_dir: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "gpu.py"),
            "--small",
            "--strict",
            "--anny-cache",
            str(anny_cache_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # the small size even beside a GPU
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = table_rows(done.stdout)
    expected = {
        ("train step", "fp32"): rf"{NUMBER} ms/step",
        ("render", "batch 1, fp32"): rf"{NUMBER} ms/frame",
        ("render", "batch 8, fp32"): rf"{NUMBER} ms/frame",
        ("body fit", "cpu"): rf"{NUMBER} frames/s",
        ("raster (Warp)", "cpu, 64 px"): rf"{NUMBER} ms/frame",
        ("flow", "RAFT large, cpu, 128 px"): rf"{NUMBER} ms/pair",
        ("flow", "DIS medium, CPU, 128 px"): rf"{NUMBER} ms/pair",
    }
    assert set(expected) <= set(rows), f"missing rows: {set(expected) - set(rows)}\n{done.stdout}"
    for key, pattern in expected.items():
        assert re.match(pattern, rows[key][0]), f"{key}: {rows[key][0]}"
    # The measured work was real: the fit matched the keypoints, the sphere covered pixels.
    residual = float(re.search(r"residual (\S+) px", rows[("body fit", "cpu")][2]).group(1))
    assert residual < 20.0
    assert int(re.search(r"(\d+) pixels hit", rows[("raster (Warp)", "cpu, 64 px")][2]).group(1)) > 100

"""Quality ablation on one subject's caches: train each variant, evaluate it, print one table.

    python bench/quality.py --subject results/juggler_a --preset standard \
        --variants full pose_only_uv no_d2g pose_to_image [--epochs 6] [--out /tmp/quality] \
        [--prior results/pretrain/renderer_prior.pt]

Every variant trains from the same caches with the same seed and settings (only the variant
differs), is evaluated on the validation frames (the last 10%) like the workflow's evaluate rule,
and the table adds the no-training body-IUV lookup, the first variant on as many training frames
(seen poses) and the real person over the inpainted background (the mask's ceiling). Variants
whose UV generator sees the pose only (``pose_only_uv``, ``model.uv_input: pose``) start from a UV
generator pretrained on this subject, as the workflow's pretrain_uv would give them.
Times are wall-clock on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from posetransfer import evaluate, pretrain, report, training
from posetransfer.config import validate_config

COLUMNS = ("ssim_box", "psnr_box", "ssim", "psnr", "robust_ssim", "robust_psnr", "temporal_error")


def train_and_evaluate(
    subject: Path, out: Path, config: training.TrainConfig, variant: str, prior: Path | None = None
) -> dict:
    """Train one variant (resuming if its work folder exists) and evaluate it; metrics + minutes."""
    folder = out / variant
    metrics_path = folder / "metrics.json"
    if metrics_path.exists():  # measured earlier: reuse
        return json.loads(metrics_path.read_text())
    settings = config.for_variant(variant)
    pretrained = None
    if not settings.body_prior and settings.variant != "pose_to_image":
        pretrained = out / "uvgen_pretrained.pt"
        if not pretrained.exists():
            pretrain_config = pretrain.PretrainConfig(
                resolution=settings.resolution,
                ngf=settings.ngf,
                n_blocks=settings.n_blocks,
                seed=settings.seed,
            )
            pretrain.run([subject], pretrained, pretrain_config, "cpu")
    started = time.perf_counter()
    training.run(subject, folder, settings, pretrained, device="auto", prior=prior)
    minutes = (time.perf_counter() - started) / 60
    result = evaluate.run(subject, folder / "model.pt", folder / "eval.json", folder / "eval.png",
                          robust_png=folder / "robust.png")  # fmt: skip
    result["train_minutes"] = minutes
    metrics_path.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subject", type=Path, required=True, help="a subject's results folder")
    parser.add_argument("--preset", default="standard", choices=sorted(training.PRESETS))
    parser.add_argument("--variants", nargs="+", default=["full", "pose_only_uv", "no_d2g", "pose_to_image"])
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--min-steps", type=int, help="override the preset's min_steps")
    parser.add_argument("--prior", type=Path, help="a renderer prior (posetransfer pretrain-renderer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/bench_quality"))
    args = parser.parse_args()
    config = training.TrainConfig.from_config(
        validate_config(
            {
                "seed": args.seed,
                "train": {"preset": args.preset, "epochs": args.epochs, "min_steps": args.min_steps},
            }
        )
    )
    config = dataclasses.replace(config, perceptual_weights="auto")
    out = args.out / args.subject.name / f"{args.preset}-seed{args.seed}{'-prior' if args.prior else ''}"
    rows = {name: train_and_evaluate(args.subject, out, config, name, args.prior) for name in args.variants}
    references = report.reference_rows(list(rows.items()))
    print(f"{args.subject.name}, preset {args.preset}, seed {args.seed}, {config.resolution} px")
    print("".join(f"{c:>15}" for c in (*COLUMNS, "train min")) + "  variant")
    for name, metrics in [*rows.items(), *references]:
        cells = [metrics.get(c) for c in (*COLUMNS, "train_minutes")]
        print("".join(f"{v:>15.4f}" if v is not None else f"{'-':>15}" for v in cells) + f"  {name}")


if __name__ == "__main__":
    main()

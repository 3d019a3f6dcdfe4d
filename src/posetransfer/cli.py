"""The ``posetransfer`` command: the stages the Snakemake rules call, plus tools for users.

Every user-facing error is one line on stderr (``posetransfer: error: FILE: problem``) and a
non-zero exit status; tracebacks are kept for bugs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from posetransfer import __version__, weights
from posetransfer.errors import PosetransferError

EPILOG = """\
The workflow itself runs through Snakemake: `snakemake --cores 2` in the project folder, or
`snakemake -s /path/to/posetransfer/Snakefile --configfile config.yaml --cores 2` in your own.
These subcommands are what its rules call; check-config, inspect and weights are for you.
Documentation: README.md in the project folder."""


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posetransfer",
        description="Person-specific neural video rendering and pose transfer (Sun et al., TPAMI).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"posetransfer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-config",
        help="validate config.yaml and its subject sheet without running anything",
        description="Validate a config file against workflow/schemas/config.schema.yaml, fill in "
        "defaults, and check the subject sheet it names (every video must exist).",
    )
    check.add_argument(
        "--configfile",
        "--config",
        dest="configfiles",
        nargs="+",
        type=Path,
        default=[Path("config.yaml")],
        metavar="FILE",
        help="config file(s), overlaid as `snakemake --configfile A B` does: later files win, mappings "
        "merge key by key (default: config.yaml); a relative sheet path is read from the last one's folder",
    )
    check.add_argument("--show", action="store_true", help="print the config with every default filled in")

    inspect = commands.add_parser(
        "inspect",
        help="print a cache's datasets, attributes and validity",
        description="Open an HDF5 cache through the validating reader and describe it. "
        "Exit status 0 when valid, 1 otherwise.",
    )
    inspect.add_argument("cache", type=Path, metavar="CACHE.h5")
    inspect.add_argument("--verify", action="store_true", help="read every chunk and check its checksum")
    weights.add_parser(commands)

    frames = commands.add_parser(
        "frames",
        help="decode a video, crop it around the person, write frames.h5 (a workflow stage)",
        description="Decode VIDEO, find the person on every kept frame, crop one square around "
        "all of them, resize to the resolution and write the frames cache and a contact sheet.",
    )
    frames.add_argument("video", type=Path)
    frames.add_argument("out", type=Path, metavar="FRAMES.h5")
    frames.add_argument("--preview", type=Path, required=True, metavar="PNG", help="contact sheet to write")
    frames.add_argument("--params", type=_json, default={}, help="the config's frames section as JSON")
    frames.add_argument("--tiles", type=int, default=12, help="frames in the contact sheet")
    frames.add_argument(
        "--min-frames", type=int, default=1, help="fewer kept frames are an error (subjects to train: 3)"
    )

    pose = commands.add_parser(
        "pose2d",
        help="BODY_25 keypoints and skeleton label images per frame (a workflow stage)",
        description="Find the person's 2D keypoints on every frame of FRAMES.h5 (MediaPipe, or "
        "OpenPose JSON files), smooth them over time, draw OpenPose-style skeleton images.",
    )
    pose.add_argument("frames", type=Path, metavar="FRAMES.h5")
    pose.add_argument("out", type=Path, metavar="POSE2D.h5")
    pose.add_argument("--preview", type=Path, required=True, metavar="MP4", help="skeleton overlay video")
    pose.add_argument("--params", type=_json, default={}, help="the config's pose2d section as JSON")
    pose.add_argument("--subject", default="", help="subject name, replaces {subject} in openpose_dir")
    pose.add_argument("--preview-seconds", type=float, default=4.0)

    masks = commands.add_parser(
        "masks",
        help="soft and binary person masks per frame (a workflow stage)",
        description="Segment the person on every frame of FRAMES.h5 (MediaPipe Pose's mask).",
    )
    masks.add_argument("frames", type=Path, metavar="FRAMES.h5")
    masks.add_argument("out", type=Path, metavar="MASKS.h5")
    masks.add_argument("--preview", type=Path, required=True, metavar="PNG", help="contact sheet to write")
    masks.add_argument("--params", type=_json, default={}, help="the config's masks section as JSON")
    masks.add_argument("--tiles", type=int, default=12, help="frames in the contact sheet")

    flow = commands.add_parser(
        "flow",
        help="forward and backward optical flow with confidence (a workflow stage)",
        description="Optical flow between adjacent frames of FRAMES.h5, both ways, with a "
        "per-pixel confidence from the forward-backward consistency check.",
    )
    flow.add_argument("frames", type=Path, metavar="FRAMES.h5")
    flow.add_argument("out", type=Path, metavar="FLOW.h5")
    flow.add_argument("--preview", type=Path, required=True, metavar="PNG", help="contact sheet to write")
    flow.add_argument("--params", type=_json, default={}, help="the config's flow section as JSON")
    flow.add_argument("--tiles", type=int, default=12, help="frame pairs in the contact sheet")
    flow.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    background = commands.add_parser(
        "background",
        help="the static background behind the person (a workflow stage)",
        description="Masked temporal median of the pixels the person uncovers; pixels never "
        "seen are inpainted.",
    )
    background.add_argument("frames", type=Path, metavar="FRAMES.h5")
    background.add_argument("masks", type=Path, metavar="MASKS.h5")
    background.add_argument("out", type=Path, metavar="BACKGROUND.h5")
    background.add_argument("--preview", type=Path, required=True, metavar="PNG", help="image to write")
    background.add_argument("--params", type=_json, default={}, help="the config's background section")

    fit = commands.add_parser(
        "body3d",
        help="fit the Anny body to a subject's keypoints (a workflow stage)",
        description="Fit one body shape and a pose per frame to POSE2D.h5's keypoints and "
        "MediaPipe world landmarks; write the fit and a mesh overlay video.",
    )
    fit.add_argument("pose2d", type=Path, metavar="POSE2D.h5")
    fit.add_argument("frames", type=Path, metavar="FRAMES.h5")
    fit.add_argument("out", type=Path, metavar="BODY3D.h5")
    fit.add_argument("--preview", type=Path, required=True, metavar="MP4", help="mesh overlay video")
    fit.add_argument("--params", type=_json, default={}, help="the config's body3d section as JSON")
    fit.add_argument("--anny-cache", type=Path, required=True, help="Anny's model cache folder")
    fit.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    fit.add_argument("--preview-seconds", type=float, default=4.0)

    labels = commands.add_parser(
        "labels3d",
        help="3D labels (Laplacian) and DensePose-style IUV from the fitted body (a workflow stage)",
        description="Rasterise the fitted body of BODY3D.h5 on every frame: the 3D label "
        "(uniform Laplacian coordinates) and the 24-part IUV image.",
    )
    labels.add_argument("body3d", type=Path, metavar="BODY3D.h5")
    labels.add_argument("out", type=Path, metavar="LABELS3D.h5")
    labels.add_argument("--preview", type=Path, required=True, metavar="PNG", help="contact sheet to write")
    labels.add_argument("--anny-cache", type=Path, required=True, help="Anny's model cache folder")
    labels.add_argument("--tiles", type=int, default=12, help="frames in the contact sheet")
    labels.add_argument(
        "--frames", type=Path, metavar="FRAMES.h5", help="the frames (iuv backends other than render)"
    )
    labels.add_argument("--iuv", type=_json, default={}, help="the config's iuv section as JSON")
    labels.add_argument("--subject", default="", help="subject name, replaces {subject} in iuv.import_dir")

    texture = commands.add_parser(
        "texture",
        help="the initial 24-part texture atlas unwrapped from the frames (a workflow stage)",
        description="Average the frames of FRAMES.h5, unwrapped through LABELS3D.h5's IUV, into "
        "a 24-part texture atlas.",
    )
    texture.add_argument("frames", type=Path, metavar="FRAMES.h5")
    texture.add_argument("labels3d", type=Path, metavar="LABELS3D.h5")
    texture.add_argument("out", type=Path, metavar="TEXTURE.h5")
    texture.add_argument("--preview", type=Path, required=True, metavar="PNG", help="atlas image to write")
    texture.add_argument("--params", type=_json, default={}, help="the config's texture section as JSON")

    truth = commands.add_parser(
        "truth-labels",
        help="the synthetic subject's true 3D labels and IUV, and the fit's accuracy against them",
        description="Render the synthetic subject's true mesh into the frames' crop with the same "
        "code as labels3d; with --fitted, write how well the fitted labels agree as JSON.",
    )
    truth.add_argument("truth", type=Path, metavar="TRUTH.h5")
    truth.add_argument("frames", type=Path, metavar="FRAMES.h5")
    truth.add_argument("out", type=Path, metavar="LABELS3D_TRUTH.h5")
    truth.add_argument("--anny-cache", type=Path, required=True, help="Anny's model cache folder")
    truth.add_argument("--fitted", type=Path, metavar="LABELS3D.h5", help="labels made from the body fit")
    truth.add_argument("--metrics", type=Path, metavar="JSON", help="where to write the accuracy")

    pre = commands.add_parser(
        "pretrain",
        help="pretrain the UV generator on the IUV of several subjects (a workflow stage)",
        description="Person-agnostic UV-generator pretraining (Eq. 6) on the caches of every "
        "SUBJECT_DIR (results/{subject}); writes the generator's weights to OUT.pt.",
    )

    prior = commands.add_parser(
        "pretrain-renderer",
        help="pretrain a renderer prior on several people (a workflow stage, pretrain.renderer)",
        description="Train the UV generator, D2G-Net and discriminator on the caches of every SUBJECT_DIR "
        "at once, each person with their own texture and background, for pretrain.renderer_steps steps; "
        "write the networks to OUT.pt. A killed run started again resumes.",
    )
    for pretraining in (pre, prior):
        pretraining.add_argument("out", type=Path, metavar="OUT.pt")
        pretraining.add_argument("subject_dirs", type=Path, nargs="+", metavar="SUBJECT_DIR")
        pretraining.add_argument(
            "--config", type=_json, required=True, help="the whole validated config as JSON"
        )
        pretraining.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    train = commands.add_parser(
        "train",
        help="train a subject's neural renderer, resuming from its last checkpoint (a workflow stage)",
        description="Joint training of UV generator, hybrid texture, D2G-Net and background on the "
        "caches in SUBJECT_DIR; checkpoints, losses.csv, samples.png and loss_curve.png go to OUT_DIR. "
        "A killed run started again resumes from OUT_DIR/last.pt.",
    )
    train.add_argument("subject_dir", type=Path, metavar="SUBJECT_DIR")
    train.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    train.add_argument("--config", type=_json, required=True, help="the whole validated config as JSON")
    train.add_argument("--pretrained", type=Path, help="UV generator weights from pretrain")
    train.add_argument("--prior", type=Path, help="a renderer prior from pretrain-renderer to start from")
    train.add_argument("--variant", help="train this model variant instead of the config's model.variant")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    evaluate = commands.add_parser(
        "evaluate",
        help="self-transfer metrics of a trained model on its validation frames (a workflow stage)",
        description="Render SUBJECT_DIR's validation frames with MODEL.pt; write SSIM, PSNR (whole "
        "frame and person box), Robust-SSIM/PSNR and the temporal error as JSON, and a sample grid.",
    )
    evaluate.add_argument("subject_dir", type=Path, metavar="SUBJECT_DIR")
    evaluate.add_argument("model", type=Path, metavar="MODEL.pt")
    evaluate.add_argument("out", type=Path, metavar="METRICS.json")
    evaluate.add_argument(
        "--samples", type=Path, required=True, metavar="PNG", help="real | ours | error grid"
    )
    evaluate.add_argument("--robust", type=Path, metavar="PNG", help="the challenging poses: real | ours")
    evaluate.add_argument("--params", type=_json, default={}, help="the config's evaluation section as JSON")

    transfer = commands.add_parser(
        "transfer",
        help="make a trained subject perform a driving video's motion",
        description="Render the subject whose model is in --model performing the motion of --driving "
        "(a video file, preprocessed here through the same stages as the workflow) or of "
        "--driving-dir (a results/{name} folder the workflow made). Writes OUT.mp4 (driving | "
        "normalised skeleton | result) at the driving video's frame rate, and beside it "
        "OUT.json (frames, ms/frame, FID or why it is unavailable) and OUT.labels3d.h5/.png.",
        epilog="Example: posetransfer transfer --model results/synthetic/model --driving dance.mp4 "
        "--out dance_synthetic.mp4",
    )
    transfer.add_argument(
        "--model", type=Path, required=True, metavar="DIR",
        help="a trained model's folder (results/{subject}/model) or its model.pt",
    )  # fmt: skip
    source = transfer.add_mutually_exclusive_group(required=True)
    source.add_argument("--driving", type=Path, metavar="VIDEO", help="a driving video file")
    source.add_argument("--driving-dir", type=Path, metavar="DIR", help="a preprocessed results/{name}")
    transfer.add_argument("--out", type=Path, required=True, metavar="OUT.mp4")
    transfer.add_argument(
        "--config", type=Path, default=Path("config.yaml"),
        help="the workflow's config file (default: config.yaml; missing: the defaults)",
    )  # fmt: skip
    transfer.add_argument("--config-json", type=_json, help="the whole validated config as JSON (rules)")
    transfer.add_argument(
        "--work-dir", type=Path, help="where --driving is preprocessed (default: beside OUT)"
    )
    transfer.add_argument("--paste-into", type=Path, metavar="VIDEO", help="paste the result back into "
                          "the target's original video (the one its frames came from)")  # fmt: skip
    transfer.add_argument("--pasted", type=Path, metavar="MP4", help="where the pasted-back video goes")
    transfer.add_argument("--metrics", type=Path, metavar="JSON", help="default: OUT.json")
    transfer.add_argument("--labels", type=Path, metavar="H5", help="posed 3D labels (OUT.labels3d.h5)")
    transfer.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    report = commands.add_parser(
        "report",
        help="write a subject's standalone HTML report (a workflow stage)",
        description="One HTML page for SUBJECT_DIR (results/{subject}): metric table, loss curves, "
        "sample and challenging frames, transfer videos playing in the page, and the ablation "
        "table of every trained variant.",
    )
    report.add_argument("subject_dir", type=Path, metavar="SUBJECT_DIR")
    report.add_argument("out", type=Path, metavar="OUT.html")
    report.add_argument("--transfers", type=Path, nargs="*", default=[], metavar="DIR",
                        help="results/transfer/{driving}_to_{subject} folders")  # fmt: skip

    body = commands.add_parser(
        "build-body-model",
        help="build the Anny body model's cache once (about 45 s and 790 MB)",
        description="Build Anny's model cache in CACHE_DIR and write MARKER when done.",
    )
    body.add_argument("cache_dir", type=Path)
    body.add_argument("marker", type=Path)

    synth = commands.add_parser(
        "synthesize",
        help="render the synthetic subject: a video plus ground truth (a workflow stage)",
        description="Render the Anny body with a procedural texture and motion over a static "
        "background; write an H.264 video, the ground-truth cache and a preview video.",
    )
    synth.add_argument("video", type=Path, metavar="VIDEO.mp4")
    synth.add_argument("truth", type=Path, metavar="TRUTH.h5")
    synth.add_argument("--preview", type=Path, required=True, metavar="MP4")
    synth.add_argument("--seed", type=int, required=True)
    synth.add_argument("--params", type=_json, default={}, help="the config's synthetic section as JSON")
    synth.add_argument("--anny-cache", type=Path, required=True, help="Anny's model cache folder")
    synth.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    synth.add_argument("--preview-seconds", type=float, default=4.0)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        from posetransfer.config import check_hardware, load_configs, load_subjects

        config = load_configs(args.configfiles)
        weights.check_required(config)
        check_hardware(config)
        sheet = Path(config["subjects"])
        subjects = load_subjects(sheet if sheet.is_absolute() else args.configfiles[-1].parent / sheet)
        if args.show:
            import yaml

            print(yaml.safe_dump(config, sort_keys=False), end="")
        print(f"{', '.join(map(str, args.configfiles))}: valid; {len(subjects)} subject(s):")
        for subject in subjects:
            print(f"  {subject.name}: {subject.video}")
        return 0
    if args.command == "weights":
        return weights.main(args)
    if args.command == "inspect":
        from posetransfer.cache import describe

        print(describe(args.cache, verify=args.verify))
        return 0
    if args.command == "frames":
        from posetransfer import frames

        params = frames.FramesParams.from_config(args.params)
        frames.run(args.video, args.out, args.preview, params, args.tiles, args.min_frames)
        return 0
    if args.command == "pose2d":
        from posetransfer import pose2d

        params = pose2d.Pose2dParams.from_config(args.params)
        pose2d.run(args.frames, args.out, args.preview, params, args.subject, args.preview_seconds)
        return 0
    if args.command == "masks":
        from posetransfer import masks

        masks.run(args.frames, args.out, args.preview, masks.MasksParams.from_config(args.params), args.tiles)
        return 0
    if args.command == "flow":
        from posetransfer import flow

        params = flow.FlowParams.from_config(args.params)
        flow.run(args.frames, args.out, args.preview, params, tiles=args.tiles, device=args.device)
        return 0
    if args.command == "background":
        from posetransfer import background

        params = background.BackgroundParams.from_config(args.params)
        background.run(args.frames, args.masks, args.out, args.preview, params)
        return 0
    if args.command == "body3d":
        from posetransfer import body3d

        body3d.run(
            args.pose2d,
            args.frames,
            args.out,
            body3d.Body3dParams.from_config(args.params),
            anny_cache=args.anny_cache,
            device=args.device,
            preview_mp4=args.preview,
            preview_seconds=args.preview_seconds,
        )
        return 0
    if args.command == "labels3d":
        from posetransfer import labels3d

        external = labels3d.external_iuv(labels3d.IuvParams.from_config(args.iuv), args.frames, args.subject)
        labels3d.run(args.body3d, args.out, args.preview, args.anny_cache, args.tiles, external)
        return 0
    if args.command == "texture":
        from posetransfer import texture

        params = texture.TextureParams.from_config(args.params)
        texture.run(args.frames, args.labels3d, args.out, args.preview, params)
        return 0
    if args.command == "truth-labels":
        from posetransfer import labels3d

        scores = labels3d.run_truth(args.truth, args.frames, args.out, args.anny_cache, args.fitted)
        if args.metrics is not None:
            from posetransfer.outputs import write_json

            write_json(args.metrics, scores)
        return 0
    if args.command == "pretrain":
        from posetransfer import pretrain

        config = pretrain.PretrainConfig.from_config(args.config)
        pretrain.run(args.subject_dirs, args.out, config, args.device)
        return 0
    if args.command == "pretrain-renderer":
        from posetransfer import prior, training

        config = training.TrainConfig.from_config(args.config).for_variant("full")
        prior.run(args.subject_dirs, args.out, config, args.config["pretrain"]["renderer_steps"], args.device)
        return 0
    if args.command == "train":
        from posetransfer import training

        config = training.TrainConfig.from_config(args.config)
        if args.variant is not None:
            config = config.for_variant(args.variant)
        training.run(args.subject_dir, args.out_dir, config, args.pretrained, args.device, prior=args.prior)
        return 0
    if args.command == "evaluate":
        from posetransfer import evaluate

        evaluate.run(
            args.subject_dir,
            args.model,
            args.out,
            args.samples,
            robust_count=args.params.get("robust_frames", 10),
            inception_weights=args.params.get("inception_weights"),
            robust_png=args.robust,
            lpips_weights=args.params.get("lpips_weights"),
        )
        return 0
    if args.command == "transfer":
        from posetransfer import transfer

        transfer.run_cli(args)
        return 0
    if args.command == "report":
        from posetransfer import report

        report.write_subject_report(args.subject_dir, args.out, args.transfers)
        return 0
    if args.command == "build-body-model":
        from posetransfer.synthesize import build_model_cache

        build_model_cache(args.cache_dir, args.marker)
        return 0
    if args.command == "synthesize":
        from posetransfer import synthesize

        synthesize.run(
            args.video,
            args.truth,
            args.preview,
            synthesize.SyntheticParams.from_config(args.params, seed=args.seed),
            anny_cache=args.anny_cache,
            device=args.device,
            preview_seconds=args.preview_seconds,
        )
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (scancel, a job's time limit, Snakemake stopping) exits through Python, so every
    # temporary file is removed by its cleanup code instead of being left half-written.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = build_parser().parse_args(argv)
    from posetransfer.progress import setup_logging

    setup_logging(args.verbose)
    try:
        return _run(args)
    except PosetransferError as exc:
        print(f"posetransfer: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

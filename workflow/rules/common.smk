# Shared helpers: config validation, the subject sheet, and input functions.
import json
import os
import shlex
import shutil
import sys

from posetransfer.config import check_hardware, jobs_run_here
from posetransfer.config import Subject, load_driving, load_subjects, transfer_pairs, validate_config_files
from posetransfer.errors import PosetransferError
from posetransfer.frames import MIN_TRAINING_FRAMES
from posetransfer.weights import check_required as check_required_weights

ENV = "../../envs/posetransfer.yaml"

# Rules call the `posetransfer` command: find it beside this Python when no venv is active.
if shutil.which("posetransfer") is None:
    os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH")]))

# The config files in overlay order: the configfile directive's, then those of --configfile
# (Snakemake lists the directive's last); an error names the one that holds the key at fault.
_CLI_CONFIG_FILES = [str(path) for path in workflow.overwrite_configfiles]
CONFIG_FILES = [str(path) for path in workflow.configfiles if str(path) not in _CLI_CONFIG_FILES]
CONFIG_FILES += _CLI_CONFIG_FILES

# Validate before any job runs: one line naming the key or file, then stop.
try:
    _validated = validate_config_files(config, CONFIG_FILES)
    check_required_weights(_validated)  # e.g. flow.backend raft without its weights file
    if jobs_run_here(sys.argv, in_job=workflow.remote_exec or workflow.subprocess_exec):
        check_hardware(_validated)  # device: cuda without a GPU, found now, not 40 s into body3d
    SUBJECTS = {subject.name: subject for subject in load_subjects(_validated["subjects"])}
    # Driving-only videos: preprocessed like subjects (frames, 2D labels, body fit), never trained.
    DRIVING = {
        video.name: video for video in load_driving(_validated["transfer"]["driving"], list(SUBJECTS.values()))
    }
    TRANSFERS = transfer_pairs(
        _validated["transfer"]["pairs"], list(SUBJECTS.values()), list(DRIVING.values())
    )
except PosetransferError as error:
    sys.exit(f"posetransfer: config error: {error}")
config.clear()
config.update(_validated)

ANNY_MARKER = f"{config['anny_cache_dir']}/built.txt"


# The default pretraining set: synthetic people the workflow renders itself (pretrain.synthetic),
# in results/pretrain/synthetic-SEED/, so that no subject of the sheet holds up another's training.
PRETRAIN_PEOPLE = {
    f"pretrain/synthetic-{seed}": Subject(f"pretrain/synthetic-{seed}", f"synthetic:{seed}", "pretraining")
    for seed in (config["pretrain"]["synthetic"]["seeds"] if config["pretrain"]["subjects"] == "synthetic" else [])
}
VIDEOS = {**SUBJECTS, **DRIVING, **PRETRAIN_PEOPLE}  # everything the preprocessing rules may be asked for
# Extra model variants trained beside the main one for the ablation table (Tables 1-3):
# results/{subject}/model-{variant}/ and evaluation-{variant}/; "" is the main model.
VARIANT_SUFFIXES = ["", *(f"-{name}" for name in config["evaluation"]["variants"])]


wildcard_constraints:
    subject="|".join(sorted(VIDEOS)),
    driving="|".join(sorted(VIDEOS)),
    target="|".join(sorted(SUBJECTS)),
    variant=f"({'|'.join(VARIANT_SUFFIXES)})",


def synthetic_subjects():
    """Synthetic subjects and driving videos (not the pretraining people: they are never fitted)."""
    return [
        name for name, video in VIDEOS.items() if video.synthetic_seed is not None and name not in PRETRAIN_PEOPLE
    ]


def synthetic_section(wildcards):
    """The render settings of a synthetic video, as JSON: pretraining people have their own."""
    if wildcards.subject in PRETRAIN_PEOPLE:
        render = {key: value for key, value in config["pretrain"]["synthetic"].items() if key != "seeds"}
        return json.dumps(render, sort_keys=True)
    return section_json("synthetic")


def video_of(name):
    """The video a subject's frames come from: its file, or the rendered synthetic video."""
    subject = VIDEOS[name]
    if subject.synthetic_seed is not None:
        return f"results/{subject.name}/synthetic/video.mp4"
    return subject.video


def subject_video(wildcards):
    return video_of(wildcards.subject)


def min_frames(wildcards):
    """A subject to train needs a few frames (the frames stage says so); a driving video one."""
    return MIN_TRAINING_FRAMES if wildcards.subject in SUBJECTS else 1


def section_json(name):
    """A config section as JSON, for a rule's command line."""
    return json.dumps(config[name], sort_keys=True)


def sections_json(*names):
    """Some top-level keys of the config as one JSON object: a rule reruns only when they change."""
    return json.dumps({name: config[name] for name in names}, sort_keys=True)


def pretrain_subjects():
    """Subjects whose IUV pretrains the UV generator (config pretrain.subjects)."""
    chosen = config["pretrain"]["subjects"]
    if chosen == "synthetic":
        return sorted(PRETRAIN_PEOPLE)
    names = sorted(SUBJECTS) if chosen == "all" else chosen
    unknown = sorted(set(names) - set(SUBJECTS))
    if unknown:
        sys.exit(f"posetransfer: config error: pretrain.subjects: {unknown[0]} is not in the subject sheet")
    return names


TRAINING_CACHES = ["frames", "pose2d", "labels3d", "masks", "flow", "background", "texture"]


# What pretraining reads of each subject (posetransfer.dataset.SubjectPaths).
PRETRAIN_CACHES = ["frames", "pose2d", "labels3d", "masks", "flow", "background"]


def pretrain_inputs(wildcards):
    return expand("results/{subject}/{stage}.h5", subject=pretrain_subjects(), stage=PRETRAIN_CACHES)


def prior_inputs(wildcards):
    """The renderer prior trains the whole renderer: each pretraining person's training caches."""
    return expand("results/{subject}/{stage}.h5", subject=pretrain_subjects(), stage=TRAINING_CACHES)


def subject_training_inputs(wildcards):
    return expand("results/{subject}/{stage}.h5", subject=wildcards.subject, stage=TRAINING_CACHES)


def pretrained_uv(wildcards):
    """The pretrained UV generator, for variants whose UV generator sees the pose only: with
    model.uv_input pose+body_iuv it starts from the fitted body's IUV and needs no pretraining."""
    variant = variant_of(wildcards)
    pose_only = config["model"]["uv_input"] == "pose" or variant == "pose_only_uv"
    if variant == "pose_to_image" or not pose_only:
        return {}
    return {"pretrained": "results/pretrain/uvgen_pretrained.pt"}


def renderer_prior(wildcards):
    """The renderer prior a training starts from, where pretrain.renderer is on (pose_to_image has
    none of its networks)."""
    if not config["pretrain"]["renderer"] or variant_of(wildcards) == "pose_to_image":
        return {}
    return {"prior": "results/pretrain/renderer_prior.pt"}


def prior_flag(wildcards, input):
    """The train command's --prior option where the rule has that input."""
    return f"--prior {shlex.quote(input.prior)}" if "prior" in input.keys() else ""


def pretrained_flag(wildcards, input):
    """The train command's --pretrained option where the rule has that input."""
    return f"--pretrained {shlex.quote(input.pretrained)}" if "pretrained" in input.keys() else ""


def variant_of(wildcards):
    """The model variant of a ``{variant}`` suffix: "" is model.variant, "-no_d2g" is no_d2g."""
    return wildcards.variant.lstrip("-") or config["model"]["variant"]


def transfer_dirs(target=None):
    """results/transfer/{driving}_to_{target} of every configured pair (of one target)."""
    return [
        f"results/transfer/{driving}_to_{name}"
        for driving, name in TRANSFERS
        if target is None or name == target
    ]


# With transfer.paste_back, the result is also pasted into the target's full original frames.
PASTED = ["results/transfer/{driving}_to_{target}/pasted.mp4"] if config["transfer"]["paste_back"] else []


def transfer_inputs(wildcards):
    """The driving video's frames, 2D labels and fit (and background when used); the target's."""
    driving = ["frames", "pose2d", "body3d"]
    if config["transfer"]["background"] == "driving":
        driving.append("background")
    inputs = {f"driving_{stage}": f"results/{wildcards.driving}/{stage}.h5" for stage in driving}
    inputs.update({f"target_{stage}": f"results/{wildcards.target}/{stage}.h5" for stage in driving[:3]})
    return inputs


def all_outputs():
    stages = ["frames", "pose2d", "masks", "flow", "background", "body3d", "labels3d", "texture"]
    previews = ["frames.png", "pose2d.mp4", "masks.png", "flow.png", "background.png", "body3d.mp4"]
    previews += ["labels3d.png", "texture.png"]
    outputs = expand("results/{subject}/{stage}.h5", subject=sorted(SUBJECTS), stage=stages)
    outputs += expand("results/{subject}/previews/{name}", subject=sorted(SUBJECTS), name=previews)
    outputs += expand("results/{subject}/previews/{name}", subject=sorted(DRIVING), name=previews[:2])
    outputs += expand("results/{subject}/previews/synthetic.mp4", subject=synthetic_subjects())
    outputs += expand("results/{subject}/synthetic/fit_accuracy.json", subject=synthetic_subjects())
    outputs += expand("results/{subject}/model/model.pt", subject=sorted(SUBJECTS))
    outputs += expand(
        "results/{subject}/evaluation{variant}/metrics.json", subject=sorted(SUBJECTS), variant=VARIANT_SUFFIXES
    )
    outputs += [f"{folder}/video.mp4" for folder in transfer_dirs()]
    outputs += expand("results/{subject}/report.html", subject=sorted(SUBJECTS))
    return outputs


# --- failure summary (issue 8: cluster runs) -----------------------------------------------------
# When a run fails, one line per failed job naming the subject, the rule and why (the last line
# of the job's log) or, for a SLURM job stopped at its time limit, the resource to raise. Local and
# SLURM runs alike; with --keep-going the other subjects' jobs have finished by then.
import re as _re


def _failure_reason(rule_name, message, logs, resources):
    """Why a job failed, in words, from Snakemake's error block and the job's own log."""
    state = _re.search(r"SLURM status is: '([A-Z_]+)", message or "")
    if state and state.group(1) == "TIMEOUT":
        runtime = _re.search(r"\bruntime=(\d+)", resources or "")
        limit = f"{runtime.group(1)} min" if runtime else "its runtime"
        doubled = 2 * int(runtime.group(1)) if runtime else 120
        return (
            f"SLURM stopped it at its time limit ({limit}): raise the `runtime` resource (minutes)"
            f" of rule {rule_name}, e.g."
            f" `--set-resources {rule_name}:runtime={doubled}`, or under set-resources in the profile"
        )
    if state and state.group(1) == "OUT_OF_MEMORY":
        return f"SLURM stopped it for exceeding its memory: raise the `mem_mb` resource of rule {rule_name}"
    if state and state.group(1) != "FAILED":  # FAILED: the command failed; its log says why
        return f"the SLURM job ended {state.group(1)}; run the same command again to resume"
    for path in logs:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                tail = [line.strip() for line in handle.read().splitlines() if line.strip()]
        except OSError:
            continue
        if tail:
            return tail[-1]
    return (message or "see the log above").strip()


def failure_summary(logfiles):
    """Lines naming each failed job's subject, rule and reason, from Snakemake's run log(s)."""
    lines = []
    for logfile in logfiles:
        try:
            with open(logfile, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        headers = {}  # jobid -> the resources line of the job's header
        for header in _re.finditer(r"^(?:local)?[r]ule \w+:\n((?:    .*\n)+)", text, _re.M):
            jobid = _re.search(r"^    jobid: (\d+)$", header.group(1), _re.M)
            resources = _re.search(r"^    resources: (.*)$", header.group(1), _re.M)
            if jobid and resources:
                headers[jobid.group(1)] = resources.group(1)
        for block in _re.finditer(r"^Error in [r]ule (\w+):\n((?:    .*\n?)+)", text, _re.M):
            rule_name, body = block.group(1), block.group(2)
            fields = dict(_re.findall(r"^    (\w+): (.*)$", body, _re.M))
            logs = [
                path.strip()
                for path in fields.get("log", "").split(" (check log")[0].split(",")
                if path.strip() and "/slurm/" not in path
            ]
            paths = [*_re.split(r",\s*", fields.get("output", "")), *logs]
            subject = next(
                (part for path in paths for part in path.split("/") if part in VIDEOS), None
            )
            reason = _failure_reason(rule_name, fields.get("message"), logs, headers.get(fields.get("jobid")))
            who = f"subject {subject}, rule {rule_name}" if subject else f"rule {rule_name}"
            lines.append(f"  {who}: {reason}")
    if lines:
        lines.insert(0, f"posetransfer: {len(lines)} job(s) failed:")
    return lines


def _print_failure_summary(log):
    for line in failure_summary(log):
        print(line, file=sys.stderr)


# The same as an `onerror:` block (which the linter counts as a rule beside functions).
workflow.onerror(_print_failure_summary)


# --- end of failure summary ----------------------------------------------------------------------


# --- resources that follow the input (issue 13) --------------------------------------------------
# Each rule's mem_mb and runtime (minutes) from its subject's frame count and resolution, with the
# constants of posetransfer.resources (measured from benchmarks/{subject}/{rule}.tsv). Snakemake's
# `attempt` scales them, so a job retried after a limit asks for more.
from pathlib import Path as _Path
from types import SimpleNamespace as _Wildcards

from posetransfer import resources as _resources


def subject_size(name):
    """(frames, pixels per frame) of a subject: frames.h5 once written, else its video or the
    synthetic settings, with frames.stride and frames.max_frames applied."""
    side = config["frames"]["resolution"]
    counted = _resources.cached_frames(_Path(f"results/{name}/frames.h5"))
    if counted is not None:
        return counted, side * side
    video = VIDEOS[name]
    if video.synthetic_seed is not None:
        total = json.loads(synthetic_section(_Wildcards(subject=name)))["num_frames"]
    elif os.path.isfile(video.video):
        total = _resources.video_size(os.path.abspath(video.video), os.path.getmtime(video.video))[0]
    else:
        total = 0  # missing: the config check has said so
    frames = config["frames"]
    return _resources.kept_frames(total, frames["stride"], frames["max_frames"]), side * side


def _job_size(rule_name, wildcards):
    """The size a job works on: its subject's (the driving video's for transfer); synthesize
    renders at the synthetic video's own size."""
    if "person" in wildcards.keys():
        name = f"pretrain/{wildcards.person}"
    else:
        name = wildcards.driving if "driving" in wildcards.keys() else wildcards.subject
    frames, pixels = subject_size(name)
    if rule_name == "synthesize":
        render = json.loads(synthetic_section(_Wildcards(subject=name)))
        pixels = render["width"] * render["height"]
    return frames, pixels


def job_mem_mb(rule_name):
    """mem_mb of a per-subject rule, for its `resources:`."""

    def mem_mb(wildcards, attempt):
        return _resources.request(rule_name, *_job_size(rule_name, wildcards), attempt).mem_mb

    return mem_mb


def job_runtime(rule_name):
    """runtime (minutes) of a per-subject rule, for its `resources:`."""

    def runtime(wildcards, attempt):
        return _resources.request(rule_name, *_job_size(rule_name, wildcards), attempt).runtime

    return runtime


def _train_request(wildcards, attempt):
    from posetransfer.training import TrainConfig  # torch: imported only when a train job is planned

    train = TrainConfig.from_config(config).for_variant(variant_of(wildcards))
    frames, pixels = subject_size(wildcards.subject)
    settings = {key: getattr(train, key) for key in ("resolution", "epochs", "min_steps", "batch_pairs")}
    settings.update({key: config["train"][key] for key in ("loader_workers", "in_memory_mb")})
    widths = {"ngf": train.ngf, "n_blocks": train.n_blocks}
    return _resources.train_request(frames, int(pixels**0.5), settings, widths, attempt, on_cpu=_on_cpu())


def _on_cpu():
    """Training asks for the CPU's memory and time with `device: cpu`; else for the GPU it requests."""
    return config["device"] == "cpu"


def training_gpus():
    """GPUs of a training job (none with `device: cpu`, so that it goes to a CPU partition)."""
    return 0 if _on_cpu() else 1


def train_mem_mb(wildcards, attempt):
    return _train_request(wildcards, attempt).mem_mb


def train_runtime(wildcards, attempt):
    """Follows the steps: the preset's epochs (or min_steps) x the subject's pairs per batch."""
    return _train_request(wildcards, attempt).runtime


def pretrain_mem_mb(wildcards, attempt):
    return _pretrain_request(attempt).mem_mb


def pretrain_runtime(wildcards, attempt):
    return _pretrain_request(attempt).runtime


def prior_mem_mb(wildcards, attempt):
    return _prior_request(attempt).mem_mb


def prior_runtime(wildcards, attempt):
    """Follows pretrain.renderer_steps at the training preset's resolution and widths."""
    return _prior_request(attempt).runtime


def _prior_request(attempt):
    from posetransfer.training import TrainConfig

    train = TrainConfig.from_config(config)
    frames, pixels = _pretraining_size()
    settings = {"resolution": train.resolution, "batch_pairs": train.batch_pairs, "in_memory_mb": train.in_memory_mb}
    widths = {"ngf": train.ngf, "n_blocks": train.n_blocks}
    steps = config["pretrain"]["renderer_steps"]
    return _resources.prior_request(frames, int(pixels**0.5), steps, settings, widths, attempt, on_cpu=_on_cpu())


def _pretrain_request(attempt):
    from posetransfer.pretrain import PretrainConfig

    pretrain = PretrainConfig.from_config(config)
    frames, pixels = _pretraining_size()
    side = pretrain.resolution or int(pixels**0.5)
    widths = {"ngf": pretrain.ngf, "n_blocks": pretrain.n_blocks}
    return _resources.pretrain_request(
        frames, side, pretrain.epochs, widths, pretrain.batch, attempt, on_cpu=_on_cpu()
    )


def _pretraining_size():
    """(frames of every pretraining subject together, the largest frame's pixels)."""
    sizes = [subject_size(name) for name in pretrain_subjects()]
    return sum(f for f, _ in sizes), max((p for _, p in sizes), default=0)

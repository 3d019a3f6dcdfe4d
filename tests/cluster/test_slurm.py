"""The SLURM profile against a live one-node SLURM: the main job, faults, and a batch of subjects.

Every run here is `snakemake --profile <profiles/slurm, see conftest.test_profile>` from the
run's folder, as a user would type it. Assertions read SLURM's own records (sacct, squeue).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REAL_VIDEOS, SHARED_DATA, encode, moving_squares
from test_workflow import SMALL  # the workflow tests' small synthetic subject, config and all

from posetransfer.video import read_frames

from .conftest import REPO, Cluster, job_headers, job_stats

pytestmark = pytest.mark.slow

# The workflow tests' small synthetic subject, with a shorter body fit and one epoch of training
# (most of a run's CPU time otherwise): these tests are about where and how jobs run.
SHORTER = {
    "body3d": {"root_iterations": 10, "iterations": 20},
    "pretrain": {"epochs": 1},
    "train": {"epochs": 1, "warmup_epochs": 0},
}
CONFIG = {**SMALL, **{key: {**SMALL.get(key, {}), **value} for key, value in SHORTER.items()}}
PROBES = Path(__file__).with_name("probes.smk")
# The plugin's --comment on each job: rule_NAME, or rule_NAME_wildcards_VALUES.
COMMENT = re.compile(r"^rule_(\w+?)(?:_wildcards_.*)?$")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


@dataclass
class Run:
    returncode: int
    output: str  # Snakemake's stdout and stderr together
    seconds: float


def start_snakemake(cluster: Cluster, workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile"):
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--configfile", "config.yaml", *args]
    return subprocess.Popen(
        command, cwd=workdir, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def snakemake(cluster: Cluster, workdir: Path, *args: str, **kwargs) -> Run:
    start = time.monotonic()
    process = start_snakemake(cluster, workdir, *args, **kwargs)
    output, _ = process.communicate(timeout=900)
    return Run(process.returncode, output, time.monotonic() - start)


def make_workdir(folder: Path, subjects: dict[str, str], **config) -> Path:
    """A run folder with its subject sheet and config.yaml (CONFIG plus ``config``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{name}\t{video}\t\n" for name, video in subjects.items())
    (folder / "subjects.tsv").write_text(f"name\tvideo\tnotes\n{rows}")
    (folder / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "subjects": "subjects.tsv", **config}))
    return folder


def rule_of(comment: str) -> str:
    return COMMENT.match(comment).group(1)


def results(workdir: Path) -> dict[str, bytes]:
    """Every output file but TensorBoard's event files (their names hold the time and host)."""
    return {
        str(path.relative_to(workdir)): path.read_bytes()
        for path in workdir.rglob("results/**/*.*")
        if "tfevents" not in path.name
    }


def declared_localrules() -> set[str]:
    match = re.search(r"^localrules:\n((?:    \w+,?\n)+)", (REPO / "Snakefile").read_text(), re.M)
    return set(re.findall(r"\w+", match.group(1))) if match else set()


class Pending:
    """A Snakemake run going on in the background; ``result()`` waits for it."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.start, self.run = process, time.monotonic(), None
        self.waiter = threading.Thread(target=self._wait, daemon=True)
        self.waiter.start()

    def _wait(self):
        output, _ = self.process.communicate()
        self.run = Run(self.process.returncode, output, time.monotonic() - self.start)

    def stop(self):
        """Stop the run if a failing test left it going (the plugin then scancels its jobs)."""
        if self.process.poll() is None:
            self.process.terminate()
        self.waiter.join(timeout=120)

    def result(self) -> Run:
        self.waiter.join(timeout=900)
        assert self.run is not None, "the run did not end within 15 minutes"
        return self.run


@pytest.fixture(scope="module")
def probes(slurm_cluster, test_profile, tmp_path_factory):
    """Probe jobs (probes.smk): GPU requests with and without a model, and a job past its runtime.

    Started first and left to run beside the other tests: SLURM stops the 1-minute job 60 to 90 s
    after it starts, and the plugin's polling backs off while nothing finishes.
    """
    workdir = make_workdir(tmp_path_factory.mktemp("probes"), {"synth": "synthetic:0"})
    pending = Pending(
        start_snakemake(
            slurm_cluster, workdir, "--profile", str(test_profile), "--verbose", "probes", snakefile=PROBES
        )
    )
    yield workdir, pending
    pending.stop()


@pytest.fixture(scope="module")
def main_runs(probes, slurm_cluster, test_profile, anny_cache_dir, tmp_path_factory):
    """The main job on the small synthetic subject: through SLURM, and locally for comparison.

    Side by side: the cluster run spends most of its time waiting for status checks.
    """
    workdirs = {
        name: make_workdir(
            tmp_path_factory.mktemp(name), {"synth": "synthetic:0"}, anny_cache_dir=str(anny_cache_dir)
        )
        for name in ("cluster", "local")
    }
    local = Pending(start_snakemake(slurm_cluster, workdirs["local"], "--cores", "2"))
    try:
        runs = {"cluster": snakemake(slurm_cluster, workdirs["cluster"], "--profile", str(test_profile))}
        runs["local"] = local.result()
    finally:
        local.stop()
    for run in runs.values():
        assert run.returncode == 0, run.output
    seconds = {name: f"{run.seconds:.0f} s" for name, run in runs.items()}
    print(f"\nmain job, side by side: cluster {seconds['cluster']}, local {seconds['local']}")
    return {name: (workdirs[name], run) for name, run in runs.items()}


def test_every_job_went_through_sbatch_and_completed(main_runs, slurm_cluster):
    workdir, run = main_runs["cluster"]
    headers = job_headers(run.output)
    remote = Counter(job["rule"] for job in headers if not job["local"])
    local = {job["rule"] for job in headers if job["local"]}
    # The same DAG as the local run; every job but the light local rules became one SLURM job.
    assert job_stats(run.output) == job_stats(main_runs["local"][1].output)
    assert "all" in local and local <= declared_localrules() | {"all"}
    assert len(SUBMITTED.findall(run.output)) == sum(remote.values())
    records = slurm_cluster.jobs(workdir)
    print(f"\n{len(records)} SLURM jobs: {', '.join(sorted(remote))}; local: {', '.join(sorted(local))}")
    assert len(records) == sum(remote.values()) == sum(job_stats(run.output).values()) - len(local)
    assert {record["State"] for record in records} == {"COMPLETED"}, records
    assert {record["ExitCode"] for record in records} == {"0:0"}
    assert Counter(rule_of(record["Comment"]) for record in records) == remote
    assert len({record["JobName"] for record in records}) == 1  # one run, one workflow id


def test_each_job_asks_for_its_rule_resources_on_the_right_partition(main_runs, slurm_cluster):
    """threads, mem_mb and runtime become the request; jobs asking for a GPU go to the GPU partition."""
    workdir, run = main_runs["cluster"]
    by_comment = {record["Comment"]: record for record in slurm_cluster.jobs(workdir)}
    for job in job_headers(run.output):
        if job["local"]:
            continue
        # The plugin's comment joins the wildcards' values with "_" ("synth_" for subject=synth,
        # variant=); rules without wildcards (pretraining) have none.
        values = [pair.partition("=")[2] for pair in job.get("wildcards", "").split(", ") if pair]
        record = by_comment[
            f"rule_{job['rule']}_wildcards_{'_'.join(values)}" if values else f"rule_{job['rule']}"
        ]
        assert int(record["ReqCPUS"]) == int(job.get("threads", 1)), record  # no line: 1 thread
        assert record["ReqMem"] == f"{job['mem_mb']}M", record
        assert int(record["TimelimitRaw"]) == int(job["runtime"]), record
        gpus = int(job.get("gpu", 0))
        assert record["Partition"] == ("gpu" if gpus else "cpu"), record
        assert (
            (f"gres/gpu={gpus}" in record["AllocTRES"]) if gpus else ("gres/gpu" not in record["AllocTRES"])
        )


def test_logs_land_where_the_profile_says(main_runs):
    workdir, run = main_runs["cluster"]
    for job in job_headers(run.output):
        if not job["local"]:
            log = workdir / job["log"]
            assert log.stat().st_size > 0 and "Traceback" not in log.read_text(), log
            assert (workdir / job["benchmark"]).read_text().startswith("s\th:m:s")
    # SLURM's own output went to the profile's slurm-logdir, and was removed when the job succeeded.
    slurm_logs = [Path(log) for _, _, log in SUBMITTED.findall(run.output)]
    assert slurm_logs and all(log.is_relative_to(workdir / "logs" / "slurm") for log in slurm_logs)
    assert not any(log.exists() for log in slurm_logs)


# Outputs that hold timings (ms per frame, also in the report) and the pasted-back video, whose
# x264 bytes were seen to vary between runs of identical frames; these are compared by content.
TIMED = re.compile(r"(metrics\.json|report\.html|pasted\.mp4)$")


def test_outputs_are_byte_identical_to_a_local_run(main_runs):
    cluster, local = results(main_runs["cluster"][0]), results(main_runs["local"][0])
    assert sorted(cluster) == sorted(local)
    assert [name for name in cluster if cluster[name] != local[name] and not TIMED.search(name)] == []
    for name in (name for name in cluster if name.endswith("metrics.json")):
        untimed = [
            {k: v for k, v in json.loads(side[name]).items() if k != "render_ms_per_frame"}
            for side in (cluster, local)
        ]
        assert untimed[0] == untimed[1], name
    for name in (name for name in cluster if name.endswith("pasted.mp4")):
        frames = [np.stack(list(read_frames(main_runs[side][0] / name))) for side in ("cluster", "local")]
        assert frames[0].shape == frames[1].shape
        assert np.abs(frames[0].astype(int) - frames[1]).mean() < 2.0, name  # H.264 noise, not content


@pytest.fixture(scope="module")
def batch(slurm_cluster, test_profile, anny_cache_dir, tmp_path_factory):
    """Three real clips, two synthetic people and one broken video as one DAG, in the background.

    Up to each subject's frames (the main run covers every stage; what happens per subject is the
    same at any depth), at most 12 frames of each clip. Runs beside the scancel test, since most of
    a test job's time is spent waiting for the plugin's next status check.
    """
    if any(not (SHARED_DATA / name).is_file() for name in REAL_VIDEOS):
        yield None
        return
    folder = tmp_path_factory.mktemp("batch")
    clips = {Path(name).stem: str(SHARED_DATA / name) for name in REAL_VIDEOS}
    broken = encode(folder / "broken.mp4", moving_squares(12), 12.0)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 3])  # cut short: undecodable
    subjects = {**clips, "synth1": "synthetic:1", "synth2": "synthetic:2", "broken": str(broken)}
    frames = {**CONFIG["frames"], "max_frames": 12}
    no_transfer = {"driving": {}, "pairs": []}  # subjects only: the main run covers transfer
    workdir = make_workdir(
        folder / "run", subjects, frames=frames, anny_cache_dir=str(anny_cache_dir), transfer=no_transfer
    )
    pending = Pending(
        start_snakemake(slurm_cluster, workdir, "--profile", str(test_profile), "--until", "frames")
    )
    yield workdir, broken, pending
    pending.stop()


@pytest.fixture(scope="module")
def cancelled(batch, slurm_cluster, test_profile, anny_cache_dir, tmp_path_factory):
    """scancel one subject's render while it writes its video, then run the same command again.

    Two synthetic subjects, up to their frames; the other subject goes on (--keep-going).
    """
    subjects = {"synth": "synthetic:0", "victim": "synthetic:1"}
    workdir = make_workdir(tmp_path_factory.mktemp("cancel"), subjects, anny_cache_dir=str(anny_cache_dir))
    command = ["--profile", str(test_profile), "--until", "frames"]
    process = start_snakemake(slurm_cluster, workdir, *command)
    partial = workdir / "results/victim/synthetic/video.mp4"  # written frame by frame while rendering
    victim, deadline = None, time.monotonic() + 300
    while victim is None and process.poll() is None and time.monotonic() < deadline:
        for line in slurm_cluster.command("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k").splitlines():
            jobid, comment = line.split("|")
            if comment == "rule_synthesize_wildcards_victim" and partial.exists():
                victim = jobid
                slurm_cluster.command("scancel", jobid)
        time.sleep(0.1)
    output, _ = process.communicate(timeout=300)
    assert victim is not None, f"never saw the victim's video being written:\n{output}"
    first = Run(process.returncode, output, 0.0)
    jobs = slurm_cluster.jobs(workdir)
    left = sorted(
        str(path.relative_to(workdir)) for path in workdir.glob("results/victim/**/*") if path.is_file()
    )
    rerun = snakemake(slurm_cluster, workdir, *command)
    return {"workdir": workdir, "victim": victim, "first": first, "jobs": jobs, "left": left, "rerun": rerun}


def test_scancel_mid_run_is_reported_and_a_rerun_resumes(cancelled, slurm_cluster, main_runs):
    workdir, victim, first = cancelled["workdir"], cancelled["victim"], cancelled["first"]
    assert first.returncode == 1, first.output
    assert f"SLURM-job '{victim}' failed, SLURM status is: 'CANCELLED'" in first.output
    assert "  subject victim, rule synthesize: the SLURM job ended CANCELLED" in first.output
    assert {(rule_of(job["Comment"]), job["State"].split()[0]) for job in cancelled["jobs"]} == {
        ("synthesize", "COMPLETED"),
        ("frames", "COMPLETED"),
        ("synthesize", "CANCELLED"),
    }
    # SLURM's own log of the job is kept where the profile says. It shows Snakemake inside the job
    # removing the job's outputs, the partly written video included; none is left.
    slurm_log = (workdir / f"logs/slurm/rule_synthesize/victim/{victim}.log").read_text()
    removed = slurm_log.split("Removing output files of failed job synthesize", 1)[1]
    assert "results/victim/synthetic/video.mp4" in removed
    assert not [name for name in cancelled["left"] if not Path(name).name.startswith(".")]

    rerun = cancelled["rerun"]
    assert rerun.returncode == 0, rerun.output
    second = [job for job in slurm_cluster.jobs(workdir) if job["JobName"] != cancelled["jobs"][0]["JobName"]]
    # The same command again ran only what had not finished (the victim's jobs), to completion.
    assert sorted(job["Comment"] for job in second) == [
        "rule_frames_wildcards_victim",
        "rule_synthesize_wildcards_victim",
    ]
    assert {job["State"] for job in second} == {"COMPLETED"}
    cluster = results(main_runs["cluster"][0])
    ours = {name: data for name, data in results(workdir).items() if "/synth/" in name}
    assert ours == {name: cluster[name] for name in ours}


def test_a_killed_job_leaves_no_temporary_files(cancelled):
    """SLURM stops a job with SIGTERM (scancel, time limit), then SIGKILL after KillWait.

    The caches' temporary files (``.NAME.PID.tmp``, renamed into place on success) are removed only
    if posetransfer turns SIGTERM into a normal exit, so that its cleanup runs.
    """
    assert cancelled["left"] == []


def test_a_batch_of_subjects_is_one_dag_and_a_broken_video_fails_alone(batch, slurm_cluster):
    if batch is None:
        pytest.skip(f"the real test videos {', '.join(REAL_VIDEOS)} are absent from {SHARED_DATA}")
    workdir, broken, pending = batch
    run = pending.result()
    print(f"\nbatch of 6 subjects: {run.seconds:.0f} s (beside the scancel test)")
    assert run.returncode == 1, run.output
    summary = run.output.split("posetransfer: 1 job(s) failed:\n", 1)[1].splitlines()[0]
    print(summary)
    # The subject, the rule, and why: the one-line error the job wrote to its log.
    assert summary.startswith(f"  subject broken, rule frames: posetransfer: error: {broken}: not a readable")
    records = slurm_cluster.jobs(workdir)
    failed = [record for record in records if record["State"] != "COMPLETED"]
    assert [(record["Comment"], record["State"]) for record in failed] == [
        ("rule_frames_wildcards_broken", "FAILED")
    ]
    assert len(records) == 3 + 2 * 2 + 1  # frames of 3 clips, synthesize + frames of 2, the broken one
    # Every other subject is complete: a dry run has nothing left to do but the broken one.
    dry = snakemake(slurm_cluster, workdir, "--dry-run", "--cores", "1", "--until", "frames")
    left = {job.get("wildcards", "") for job in job_headers(dry.output) if job["rule"] != "all"}
    assert left == {"subject=broken"}, dry.output
    assert len({record["JobName"] for record in records}) == 1  # one DAG, one run


def test_gpu_rules_ask_for_a_gpu_and_go_to_the_gpu_partition(probes, slurm_cluster):
    workdir, run = probes[0], probes[1].result()
    records = {rule_of(record["Comment"]): record for record in slurm_cluster.jobs(workdir)}
    calls = [line for line in run.output.splitlines() if line.startswith("sbatch call:")]
    sbatch = {rule_of(re.search(r"--comment '?(\S+?)'? ", call).group(1)): call for call in calls}
    # The plugin turns `gpu` into --gpus=N and `gpu` + `gpu_model` into --gpus=MODEL:N ...
    assert " --gpus=1" in sbatch["gpu_probe"] and " --gpus=fakegpu:1" in sbatch["gpu_model_probe"]
    assert "--gpus" not in sbatch["cpu_probe"]
    # ... the partition config sends those jobs to the GPU partition, and SLURM gave each its GPU.
    for rule in ("gpu_probe", "gpu_model_probe"):
        assert records[rule]["State"] == "COMPLETED"
        assert records[rule]["Partition"] == "gpu"
        assert "gres/gpu=1" in records[rule]["AllocTRES"]
        assert (workdir / f"probes/{rule.removesuffix('_probe')}.txt").read_text().split() == [
            "partition=gpu",
            "gpus=0",
        ]
    assert records["cpu_probe"]["Partition"] == "cpu"
    assert "gres/gpu" not in records["cpu_probe"]["AllocTRES"]


def test_a_job_past_its_runtime_is_named_with_the_resource_to_raise(probes, slurm_cluster):
    workdir, run = probes[0], probes[1].result()
    assert run.returncode == 1
    record = next(job for job in slurm_cluster.jobs(workdir) if rule_of(job["Comment"]) == "too_slow")
    assert record["State"] == "TIMEOUT" and record["TimelimitRaw"] == "1"
    summary = run.output.split("posetransfer: 1 job(s) failed:\n", 1)[1].splitlines()[0]
    print(f"\n{summary}")
    assert summary.startswith("  rule too_slow: SLURM stopped it at its time limit (1 min)")
    assert "raise the `runtime` resource" in summary and "--set-resources too_slow:runtime=2" in summary
    assert not (workdir / "probes/too_slow.txt").exists()

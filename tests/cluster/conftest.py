"""A live one-node SLURM for the cluster tests: started by start_slurm.sh, stopped by PID at the end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

CLUSTER_TESTS = Path(__file__).resolve().parent
REPO = CLUSTER_TESTS.parents[1]
SCRIPT = CLUSTER_TESTS / "start_slurm.sh"
# What start_slurm.sh runs; Debian puts the daemons in /usr/sbin.
REQUIRED = (
    "munged",
    "mungekey",
    "mariadbd",
    "mariadb-install-db",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sacct",
    "squeue",
    "scancel",
)
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# The profile as a user would use it, with only these changes: the account the test cluster has
# (the one thing its README asks users to edit besides partitions) and quick queue polling, since
# test jobs last seconds, not hours. The test cluster's partitions are named like the profile's.
TEST_SETTINGS = {
    "slurm-init-seconds-before-status-checks": 2,
    "seconds-between-status-checks": 2,
    "latency-wait": 5,
}
TEST_RESOURCES = {"slurm_account": "posetransfer"}
TEST_GPU_MODELS = ["fakegpu"]  # the GPU type start_slurm.sh configures


class Cluster:
    """The running test cluster: its environment and sacct records."""

    FIELDS = ("JobID", "JobName", "Partition", "State", "Comment", "ReqCPUS", "ReqMem", "TimelimitRaw")
    FIELDS += ("AllocTRES", "WorkDir", "ExitCode")

    def __init__(self, root: Path):
        self.root = root
        # The srun shim (see start_slurm.sh) first, then this venv's snakemake and posetransfer.
        path = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])
        self.env = {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf"), "PATH": path}

    def command(self, *args: str) -> str:
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise AssertionError(f"{' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def jobs(self, workdir: Path, settle: float = 20.0) -> list[dict[str, str]]:
        """sacct records of the jobs submitted from ``workdir`` (no steps), oldest first.

        slurmdbd records a job's end a moment after slurmctld; wait until no job is still
        pending or running there.
        """
        deadline = time.monotonic() + settle
        while True:
            output = self.command(
                "sacct", "-X", "-P", "-n", "--starttime", "2000-01-01", "--format", ",".join(self.FIELDS)
            )
            records = [dict(zip(self.FIELDS, line.split("|"), strict=True)) for line in output.splitlines()]
            records = [record for record in records if record["WorkDir"] == str(workdir)]
            if all(record["State"] not in ("PENDING", "RUNNING") for record in records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"sacct still shows unfinished jobs: {records}")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    missing = [name for name in REQUIRED if shutil.which(name, path=SEARCH_PATH) is None]
    if missing:
        pytest.skip(
            f"SLURM is not installed here ({', '.join(missing)} missing); `bash tests/cluster/start_slurm.sh"
            " install` installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server (.ci/run does)"
        )
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (start_slurm.sh run)")
    root = tmp_path_factory.mktemp("slurm")
    errors = root / "start_slurm.err"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "run", str(root)], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    # The script times out each step itself, and exits (EOF here) when one fails.
    ready = process.stdout.readline()
    if not ready.startswith("slurm ready"):
        process.wait(timeout=60)
        pytest.fail(f"the test cluster did not start:\n{errors.read_text()}")
    try:
        yield Cluster(root)
    finally:
        # The script stops slurmd, slurmctld, slurmdbd, mariadbd and munged by PID, in that order.
        process.terminate()
        process.wait(timeout=120)
        process.stdout.close()


@pytest.fixture(scope="session")
def test_profile(tmp_path_factory) -> Path:
    """profiles/slurm, copied, with TEST_SETTINGS, TEST_RESOURCES and the test cluster's GPU model."""
    folder = tmp_path_factory.mktemp("profile")
    shutil.copytree(REPO / "profiles" / "slurm", folder, dirs_exist_ok=True)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config.update(TEST_SETTINGS)
    config["default-resources"] = {**config.get("default-resources", {}), **TEST_RESOURCES}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    partitions = yaml.safe_load((folder / "partitions.yaml").read_text())
    partitions["partitions"]["gpu"]["available_gpu_models"] = TEST_GPU_MODELS
    (folder / "partitions.yaml").write_text(yaml.safe_dump(partitions, sort_keys=False))
    return folder


def job_headers(output: str) -> list[dict[str, str]]:
    """The jobs Snakemake started, from its `rule NAME:` / `localrule NAME:` headers."""
    jobs = []
    for match in re.finditer(r"^(localrule|rule) (\w+):\n((?:    .*\n)+)", output, re.M):
        fields = dict(re.findall(r"^    (\w+): (.*)$", match.group(3), re.M))
        resources = dict(re.findall(r"(\w+)=([^,]+)", fields.get("resources", "")))
        jobs.append({"local": match.group(1) == "localrule", "rule": match.group(2), **fields, **resources})
    return jobs


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's `Job stats:` table: jobs per rule."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}

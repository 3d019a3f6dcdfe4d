# posetransfer: one video of a person -> a person-specific neural video renderer.
# Run `snakemake --cores 2` here; see README.md. Stages live in workflow/rules/,
# their logic in the posetransfer package (src/posetransfer/); each rule calls one module.
import os

from snakemake.utils import min_version

min_version("9.0")


# The config.yaml of the folder you run in; without one, the defaults beside this Snakefile
# (README, "Run it from your own folder"). --configfile files are read on top of it.
configfile: "config.yaml" if os.path.exists("config.yaml") else f"{workflow.basedir}/config.yaml"


envvars:
    "PATH",


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/labels2d.smk"
include: "workflow/rules/body3d.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/transfer.smk"


report: "workflow/report/workflow.rst"


# Rules that run on the submitting machine, not as SLURM jobs (README, "Running on a cluster"):
# only the target rule; every stage scales with the video and belongs on a compute node.
localrules:
    all,


rule all:
    input:
        all_outputs(),
    default_target: True

# Test-only Snakefile for tests/cluster/test_slurm.py: the real workflow (its rules and its failure
# summary, workflow/rules/common.smk) plus probe rules that take seconds where the real GPU rules
# take minutes: a job asking for a GPU, one naming a GPU model (no real rule does by default), a
# CPU job beside them, and a job that outlives its runtime.
import os

REPO = os.path.realpath(os.path.join(workflow.basedir, "..", ".."))


include: os.path.join(REPO, "Snakefile")


rule probes:
    input:
        "probes/gpu.txt",
        "probes/gpu_model.txt",
        "probes/cpu.txt",
        "probes/too_slow.txt",


rule gpu_probe:
    output:
        "probes/gpu.txt",
    resources:
        gpu=1,
        runtime=5,
        mem_mb=500,
    shell:
        'echo "partition=$SLURM_JOB_PARTITION gpus=${{CUDA_VISIBLE_DEVICES-none}}" > {output}'


use rule gpu_probe as gpu_model_probe with:
    output:
        "probes/gpu_model.txt",
    resources:
        gpu=1,
        gpu_model="fakegpu",
        runtime=5,
        mem_mb=500,


use rule gpu_probe as cpu_probe with:
    output:
        "probes/cpu.txt",
    resources:
        runtime=5,
        mem_mb=500,


rule too_slow:
    output:
        "probes/too_slow.txt",
    resources:
        runtime=1,
        mem_mb=500,
    shell:
        "sleep 600 && touch {output}"

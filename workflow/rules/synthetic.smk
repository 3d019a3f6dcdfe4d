# The embedded default subject: rendered by the workflow itself, with ground truth.


rule body_model:
    output:
        ANNY_MARKER,
    params:
        cache_dir=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        "logs/body_model.log",
    benchmark:
        "benchmarks/body_model.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "posetransfer build-body-model {params.cache_dir:q} {output:q} > {log:q} 2>&1"


rule synthesize:
    input:
        body_model=ANNY_MARKER,
    output:
        video="results/{subject}/synthetic/video.mp4",
        truth="results/{subject}/synthetic/truth.h5",
        preview=report(
            "results/{subject}/previews/synthetic.mp4",
            caption="../report/synthetic.rst",
            category="Synthetic subject",
            labels={"subject": "{subject}", "view": "render with ground truth"},
        ),
    params:
        seed=lambda wildcards: VIDEOS[wildcards.subject].synthetic_seed,
        synthetic=synthetic_section,
        cache_dir=lambda wildcards, input: os.path.dirname(input.body_model),
        device=config["device"],
        seconds=config["preview"]["seconds"],
    log:
        "logs/{subject}/synthesize.log",
    benchmark:
        "benchmarks/{subject}/synthesize.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("synthesize"),
        runtime=job_runtime("synthesize"),
    conda:
        ENV
    shell:
        "posetransfer synthesize {output.video:q} {output.truth:q} --preview {output.preview:q}"
        " --seed {params.seed} --params {params.synthetic:q} --anny-cache {params.cache_dir:q}"
        " --device {params.device} --preview-seconds {params.seconds} > {log:q} 2>&1"


rule truth_labels:
    input:
        truth="results/{subject}/synthetic/truth.h5",
        frames="results/{subject}/frames.h5",
        fitted="results/{subject}/labels3d.h5",
        body_model=ANNY_MARKER,
    output:
        cache="results/{subject}/synthetic/labels3d_truth.h5",
        metrics=report(
            "results/{subject}/synthetic/fit_accuracy.json",
            caption="../report/fit_accuracy.rst",
            category="Synthetic subject",
            labels={"subject": "{subject}", "view": "fit against the truth"},
        ),
    params:
        cache_dir=lambda wildcards, input: os.path.dirname(input.body_model),
    log:
        "logs/{subject}/truth_labels.log",
    benchmark:
        "benchmarks/{subject}/truth_labels.tsv"
    threads: 1
    resources:
        mem_mb=job_mem_mb("truth_labels"),
        runtime=job_runtime("truth_labels"),
    conda:
        ENV
    shell:
        "posetransfer truth-labels {input.truth:q} {input.frames:q} {output.cache:q}"
        " --anny-cache {params.cache_dir:q} --fitted {input.fitted:q} --metrics {output.metrics:q}"
        " > {log:q} 2>&1"


# The pretraining people's 3D labels and IUV are the true ones: rendered from the mesh they were
# made with, into their frames' crop, by the labels3d stage's own code; no body fit.
ruleorder: pretrain_person_labels > labels3d


rule pretrain_person_labels:
    input:
        truth="results/pretrain/{person}/synthetic/truth.h5",
        frames="results/pretrain/{person}/frames.h5",
        body_model=ANNY_MARKER,
    output:
        "results/pretrain/{person}/labels3d.h5",
    wildcard_constraints:
        person=r"synthetic-\d+",
    params:
        cache_dir=lambda wildcards, input: os.path.dirname(input.body_model),
    log:
        "logs/pretrain/{person}/labels3d.log",
    benchmark:
        "benchmarks/pretrain/{person}/labels3d.tsv"
    threads: 1
    resources:
        mem_mb=job_mem_mb("truth_labels"),
        runtime=job_runtime("truth_labels"),
    conda:
        ENV
    shell:
        "posetransfer truth-labels {input.truth:q} {input.frames:q} {output:q}"
        " --anny-cache {params.cache_dir:q} > {log:q} 2>&1"

# The neural renderer: person-agnostic UV-generator pretraining, then per-subject joint training.


rule pretrain_uv:
    input:
        caches=pretrain_inputs,
    output:
        "results/pretrain/uvgen_pretrained.pt",
    params:
        subject_dirs=lambda wildcards: " ".join(f"results/{name}" for name in pretrain_subjects()),
        config=sections_json("seed", "pretrain", "train", "model"),
        device=config["device"],
    log:
        "logs/pretrain_uv.log",
    benchmark:
        "benchmarks/pretrain_uv.tsv"
    threads: 2
    resources:
        mem_mb=pretrain_mem_mb,
        runtime=pretrain_runtime,
        gpu=training_gpus(),
    conda:
        ENV
    shell:
        "posetransfer pretrain {output:q} {params.subject_dirs} --config {params.config:q}"
        " --device {params.device} > {log:q} 2>&1"


rule pretrain_renderer:
    input:
        caches=prior_inputs,
    output:
        "results/pretrain/renderer_prior.pt",
    params:
        subject_dirs=lambda wildcards: " ".join(f"results/{name}" for name in pretrain_subjects()),
        config=sections_json("seed", "pretrain", "train", "model", "losses", "perceptual"),
        device=config["device"],
    log:
        "logs/pretrain_renderer.log",
    benchmark:
        "benchmarks/pretrain_renderer.tsv"
    threads: 2
    resources:
        mem_mb=prior_mem_mb,
        runtime=prior_runtime,
        gpu=training_gpus(),
    conda:
        ENV
    shell:
        "posetransfer pretrain-renderer {output:q} {params.subject_dirs} --config {params.config:q}"
        " --device {params.device} > {log:q} 2>&1"


rule train:
    input:
        unpack(pretrained_uv),
        unpack(renderer_prior),
        caches=subject_training_inputs,
    output:
        model="results/{subject}/model{variant}/model.pt",
        losses="results/{subject}/model{variant}/losses.csv",
        curve=report(
            "results/{subject}/model{variant}/loss_curve.png",
            caption="../report/loss_curve.rst",
            category="Training",
            labels={"subject": "{subject}", "view": "loss curves{variant}"},
        ),
        samples=report(
            "results/{subject}/model{variant}/samples.png",
            caption="../report/samples.rst",
            category="Training",
            labels={"subject": "{subject}", "view": "samples{variant}"},
        ),
    params:
        subject_dir="results/{subject}",
        out_dir=lambda wildcards, output: os.path.dirname(output.model),
        config=sections_json("seed", "train", "model", "losses", "perceptual"),
        device=config["device"],
        variant=variant_of,
        pretrained=pretrained_flag,
        prior=prior_flag,
    log:
        "logs/{subject}/train{variant}.log",
    benchmark:
        "benchmarks/{subject}/train{variant}.tsv"
    threads: 2
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=training_gpus(),
    conda:
        ENV
    shell:
        "posetransfer train {params.subject_dir:q} {params.out_dir:q} --config {params.config:q}"
        " {params.pretrained} {params.prior} --variant {params.variant} --device {params.device}"
        " > {log:q} 2>&1"


rule evaluate:
    input:
        caches=subject_training_inputs,
        model="results/{subject}/model{variant}/model.pt",
    output:
        metrics="results/{subject}/evaluation{variant}/metrics.json",
        samples=report(
            "results/{subject}/evaluation{variant}/samples.png",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"subject": "{subject}", "view": "validation frames{variant}"},
        ),
        robust="results/{subject}/evaluation{variant}/robust.png",
    params:
        subject_dir=lambda wildcards, input: os.path.dirname(input.caches[0]),
        evaluation=section_json("evaluation"),
    log:
        "logs/{subject}/evaluate{variant}.log",
    benchmark:
        "benchmarks/{subject}/evaluate{variant}.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("evaluate"),
        runtime=job_runtime("evaluate"),
    conda:
        ENV
    shell:
        "posetransfer evaluate {params.subject_dir:q} {input.model:q} {output.metrics:q}"
        " --samples {output.samples:q} --robust {output.robust:q} --params {params.evaluation:q}"
        " > {log:q} 2>&1"

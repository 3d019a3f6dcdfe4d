# Pose transfer and the per-subject HTML report.

rule transfer:
    input:
        unpack(transfer_inputs),
        model="results/{target}/model/model.pt",
        body_model=ANNY_MARKER,
    output:
        *PASTED,
        video=report(
            "results/transfer/{driving}_to_{target}/video.mp4",
            caption="../report/transfer.rst",
            category="Pose transfer",
            labels={"driving": "{driving}", "target": "{target}"},
        ),
        metrics="results/transfer/{driving}_to_{target}/metrics.json",
        labels="results/transfer/{driving}_to_{target}/labels3d.h5",
        labels_preview="results/transfer/{driving}_to_{target}/labels3d.png",
    params:
        driving_dir=lambda wildcards, input: os.path.dirname(input.driving_frames),
        config=sections_json("anny_cache_dir", "pose2d", "transfer", "evaluation"),
        device=config["device"],
        paste=lambda wildcards, output: (
            f"--paste-into '{video_of(wildcards.target)}' --pasted '{output[0]}'"
            if PASTED
            else ""
        ),
    log:
        "logs/transfer/{driving}_to_{target}.log",
    benchmark:
        "benchmarks/transfer/{driving}_to_{target}.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("transfer"),
        runtime=job_runtime("transfer"),
    conda:
        ENV
    shell:
        "posetransfer transfer --model {input.model:q} --driving-dir {params.driving_dir:q}"
        " --out {output.video:q} --metrics {output.metrics:q} --labels {output.labels:q}"
        " --config-json {params.config:q} {params.paste}"
        " --device {params.device} > {log:q} 2>&1"


rule subject_report:
    input:
        metrics=expand("results/{{subject}}/evaluation{variant}/metrics.json", variant=VARIANT_SUFFIXES),
        curve="results/{subject}/model/loss_curve.png",
        samples="results/{subject}/evaluation/samples.png",
        transfers=lambda wildcards: [f"{folder}/video.mp4" for folder in transfer_dirs(wildcards.subject)],
    output:
        "results/{subject}/report.html",
    params:
        subject_dir=lambda wildcards, input: os.path.dirname(os.path.dirname(input.metrics[0])),
        transfers=lambda wildcards, input: " ".join(f"'{os.path.dirname(path)}'" for path in input.transfers),
    log:
        "logs/{subject}/report.log",
    benchmark:
        "benchmarks/{subject}/report.tsv"
    threads: 1
    resources:
        mem_mb=job_mem_mb("subject_report"),
        runtime=job_runtime("subject_report"),
    conda:
        ENV
    shell:
        "posetransfer report {params.subject_dir:q} {output:q} --transfers {params.transfers}"
        " > {log:q} 2>&1"

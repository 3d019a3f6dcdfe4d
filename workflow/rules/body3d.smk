# 3D labels: the body model fitted to each subject's video.


rule body3d:
    input:
        pose2d="results/{subject}/pose2d.h5",
        frames="results/{subject}/frames.h5",
        body_model=ANNY_MARKER,
    output:
        cache="results/{subject}/body3d.h5",
        preview=report(
            "results/{subject}/previews/body3d.mp4",
            caption="../report/body3d.rst",
            category="3D labels",
            labels={"subject": "{subject}", "view": "fitted body overlay"},
        ),
    params:
        body3d=section_json("body3d"),
        cache_dir=lambda wildcards, input: os.path.dirname(input.body_model),
        device=config["device"],
        seconds=config["preview"]["seconds"],
    log:
        "logs/{subject}/body3d.log",
    benchmark:
        "benchmarks/{subject}/body3d.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
    conda:
        ENV
    shell:
        "posetransfer body3d {input.pose2d:q} {input.frames:q} {output.cache:q}"
        " --preview {output.preview:q} --params {params.body3d:q} --anny-cache {params.cache_dir:q}"
        " --device {params.device} --preview-seconds {params.seconds} > {log:q} 2>&1"

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
        mem_mb=job_mem_mb("body3d"),
        runtime=job_runtime("body3d"),
    conda:
        ENV
    shell:
        "posetransfer body3d {input.pose2d:q} {input.frames:q} {output.cache:q}"
        " --preview {output.preview:q} --params {params.body3d:q} --anny-cache {params.cache_dir:q}"
        " --device {params.device} --preview-seconds {params.seconds} > {log:q} 2>&1"


rule labels3d:
    input:
        body3d="results/{subject}/body3d.h5",
        frames="results/{subject}/frames.h5",
        body_model=ANNY_MARKER,
    output:
        cache="results/{subject}/labels3d.h5",
        preview=report(
            "results/{subject}/previews/labels3d.png",
            caption="../report/labels3d.rst",
            category="3D labels",
            labels={"subject": "{subject}", "view": "3D labels and IUV"},
        ),
    params:
        cache_dir=lambda wildcards, input: os.path.dirname(input.body_model),
        tiles=config["preview"]["tiles"],
        iuv=section_json("iuv"),
    log:
        "logs/{subject}/labels3d.log",
    benchmark:
        "benchmarks/{subject}/labels3d.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("labels3d"),
        runtime=job_runtime("labels3d"),
    conda:
        ENV
    shell:
        "posetransfer labels3d {input.body3d:q} {output.cache:q} --preview {output.preview:q}"
        " --anny-cache {params.cache_dir:q} --tiles {params.tiles} --frames {input.frames:q}"
        " --iuv {params.iuv:q} --subject {wildcards.subject} > {log:q} 2>&1"


rule texture:
    input:
        frames="results/{subject}/frames.h5",
        labels3d="results/{subject}/labels3d.h5",
    output:
        cache="results/{subject}/texture.h5",
        preview=report(
            "results/{subject}/previews/texture.png",
            caption="../report/texture.rst",
            category="3D labels",
            labels={"subject": "{subject}", "view": "texture atlas"},
        ),
    params:
        texture=section_json("texture"),
    log:
        "logs/{subject}/texture.log",
    benchmark:
        "benchmarks/{subject}/texture.tsv"
    threads: 1
    resources:
        mem_mb=job_mem_mb("texture"),
        runtime=job_runtime("texture"),
    conda:
        ENV
    shell:
        "posetransfer texture {input.frames:q} {input.labels3d:q} {output.cache:q}"
        " --preview {output.preview:q} --params {params.texture:q} > {log:q} 2>&1"

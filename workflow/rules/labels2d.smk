# 2D labels from the frames: keypoints and skeletons, person masks, optical flow, background.


rule pose2d:
    input:
        frames="results/{subject}/frames.h5",
    output:
        cache="results/{subject}/pose2d.h5",
        preview=report(
            "results/{subject}/previews/pose2d.mp4",
            caption="../report/pose2d.rst",
            category="2D labels",
            labels={"subject": "{subject}", "view": "skeleton overlay"},
        ),
    params:
        pose2d=section_json("pose2d"),
        seconds=config["preview"]["seconds"],
    log:
        "logs/{subject}/pose2d.log",
    benchmark:
        "benchmarks/{subject}/pose2d.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("pose2d"),
        runtime=job_runtime("pose2d"),
    conda:
        ENV
    shell:
        "posetransfer pose2d {input.frames:q} {output.cache:q} --preview {output.preview:q}"
        " --params {params.pose2d:q} --subject {wildcards.subject}"
        " --preview-seconds {params.seconds} > {log:q} 2>&1"


rule masks:
    input:
        frames="results/{subject}/frames.h5",
    output:
        cache="results/{subject}/masks.h5",
        preview=report(
            "results/{subject}/previews/masks.png",
            caption="../report/masks.rst",
            category="2D labels",
            labels={"subject": "{subject}", "view": "person masks"},
        ),
    params:
        masks=section_json("masks"),
        tiles=config["preview"]["tiles"],
    log:
        "logs/{subject}/masks.log",
    benchmark:
        "benchmarks/{subject}/masks.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("masks"),
        runtime=job_runtime("masks"),
    conda:
        ENV
    shell:
        "posetransfer masks {input.frames:q} {output.cache:q} --preview {output.preview:q}"
        " --params {params.masks:q} --tiles {params.tiles} > {log:q} 2>&1"


rule flow:
    input:
        frames="results/{subject}/frames.h5",
    output:
        cache="results/{subject}/flow.h5",
        preview=report(
            "results/{subject}/previews/flow.png",
            caption="../report/flow.rst",
            category="2D labels",
            labels={"subject": "{subject}", "view": "optical flow and confidence"},
        ),
    params:
        flow=section_json("flow"),
        tiles=config["preview"]["tiles"],
        device=config["device"],
    log:
        "logs/{subject}/flow.log",
    benchmark:
        "benchmarks/{subject}/flow.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("flow"),
        runtime=job_runtime("flow"),
    conda:
        ENV
    shell:
        "posetransfer flow {input.frames:q} {output.cache:q} --preview {output.preview:q}"
        " --params {params.flow:q} --tiles {params.tiles} --device {params.device}"
        " > {log:q} 2>&1"


rule background:
    input:
        frames="results/{subject}/frames.h5",
        masks="results/{subject}/masks.h5",
    output:
        cache="results/{subject}/background.h5",
        preview=report(
            "results/{subject}/previews/background.png",
            caption="../report/background.rst",
            category="2D labels",
            labels={"subject": "{subject}", "view": "background"},
        ),
    params:
        background=section_json("background"),
    log:
        "logs/{subject}/background.log",
    benchmark:
        "benchmarks/{subject}/background.tsv"
    threads: 1
    resources:
        mem_mb=job_mem_mb("background"),
        runtime=job_runtime("background"),
    conda:
        ENV
    shell:
        "posetransfer background {input.frames:q} {input.masks:q} {output.cache:q}"
        " --preview {output.preview:q} --params {params.background:q} > {log:q} 2>&1"

# Frames: decode the video, crop one square around the person, cache at the training resolution.


rule frames:
    input:
        video=subject_video,
    output:
        cache="results/{subject}/frames.h5",
        preview=report(
            "results/{subject}/previews/frames.png",
            caption="../report/frames.rst",
            category="Frames",
            labels={"subject": "{subject}", "view": "crop contact sheet"},
        ),
    params:
        frames=section_json("frames"),
        tiles=config["preview"]["tiles"],
        min_frames=min_frames,
    log:
        "logs/{subject}/frames.log",
    benchmark:
        "benchmarks/{subject}/frames.tsv"
    threads: 2
    resources:
        mem_mb=job_mem_mb("frames"),
        runtime=job_runtime("frames"),
    conda:
        ENV
    shell:
        "posetransfer frames {input.video:q} {output.cache:q} --preview {output.preview:q}"
        " --params {params.frames:q} --tiles {params.tiles} --min-frames {params.min_frames}"
        " > {log:q} 2>&1"

rule extract_patch_grids:
    input:
        table="data/processed/{dataset}/items.parquet",
        spec="data/processed/{dataset}/spec.json",
        arrays=expand("data/processed/{{dataset}}/{split}.npy", split=SPLITS),
        provenance="data/processed/{dataset}/provenance.json",
        weights=local_weights_file,
    output:
        grids=expand(
            "results/patch_grids/{{dataset}}/{{backbone}}/{{res}}/{split}.npy",
            split=SPLITS,
        ),
        spec="results/patch_grids/{dataset}/{backbone}/{res}/spec.json",
        provenance="results/patch_grids/{dataset}/{backbone}/{res}/provenance.json",
    log:
        "logs/extract_patch_grids/{dataset}/{backbone}/{res}.log",
    benchmark:
        "results/benchmarks/extract_patch_grids/{dataset}/{backbone}/{res}.tsv"
    conda:
        "../../envs/extract.yaml"
    threads: 2
    resources:
        mem_mb=extraction_mem_mb,
        runtime=extraction_runtime,
        gpu=1,
    params:
        code=code_digest("medprobe.stages.patch_grids"),
        settings=config["extract"],
        weights=weights_params,
    script:
        "../scripts/extract_patch_grids.py"


rule segment:
    input:
        grids=expand(
            "results/patch_grids/{{dataset}}/{{backbone}}/{{res}}/{split}.npy",
            split=SPLITS,
        ),
        grids_provenance="results/patch_grids/{dataset}/{backbone}/{res}/provenance.json",
        masks=expand("data/processed/{{dataset}}/masks_{split}.npy", split=SPLITS),
        masks_provenance="data/processed/{dataset}/masks_provenance.json",
        table="data/processed/{dataset}/items.parquet",
        manifest="data/raw/{dataset}/manifest.tsv",
    output:
        predictions="results/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}/predictions.npy",
        volumes=directory(
            "results/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}/volumes"
        ),
        provenance="results/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}/provenance.json",
    log:
        "logs/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}.log",
    benchmark:
        "results/benchmarks/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}.tsv"
    conda:
        "../../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        code=code_digest("medprobe.stages.segment"),
        settings=head_params,
    script:
        "../scripts/segment.py"


rule evaluate_segmentation:
    input:
        predictions="results/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}/predictions.npy",
        provenance="results/segment/{dataset}/{backbone}/{res}/{head}/seed{seed}/provenance.json",
        masks="data/processed/{dataset}/masks_test.npy",
        table="data/processed/{dataset}/items.parquet",
        manifest="data/raw/{dataset}/manifest.tsv",
    output:
        metrics="results/evaluate/{dataset}/{backbone}/{res}/{head}/seed{seed}/metrics.csv",
        cases="results/evaluate/{dataset}/{backbone}/{res}/{head}/seed{seed}/cases.csv",
        provenance="results/evaluate/{dataset}/{backbone}/{res}/{head}/seed{seed}/provenance.json",
    log:
        "logs/evaluate_segmentation/{dataset}/{backbone}/{res}/{head}/seed{seed}.log",
    conda:
        "../../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=small_job_mem_mb,
        runtime=small_job_runtime,
    params:
        code=code_digest("medprobe.stages.evaluate_segmentation"),
        settings=config["evaluate"],
    script:
        "../scripts/evaluate_segmentation.py"


rule overlays:
    input:
        cases=overlay_candidates,
        predictions=overlay_predictions,
        images="data/processed/{dataset}/test.npy",
        masks="data/processed/{dataset}/masks_test.npy",
        table="data/processed/{dataset}/items.parquet",
    output:
        png=report(
            "results/figures/overlays_{dataset}.png",
            caption="../report/overlays.rst",
            category="Segmentation",
        ),
        pdf="results/figures/overlays_{dataset}.pdf",
    log:
        "logs/overlays/{dataset}.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.stages.overlays"),
    script:
        "../scripts/overlays.py"

rule preprocess:
    input:
        manifest="data/raw/{dataset}/manifest.tsv",
        provenance="data/raw/{dataset}/provenance.json",
    output:
        table="data/processed/{dataset}/items.parquet",
        split="data/processed/{dataset}/split.tsv",
        spec="data/processed/{dataset}/spec.json",
        arrays=expand("data/processed/{{dataset}}/{split}.npy", split=SPLITS),
        provenance="data/processed/{dataset}/provenance.json",
    log:
        "logs/preprocess/{dataset}.log",
    benchmark:
        "results/benchmarks/preprocess/{dataset}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        code=preprocess_code,
        registry_name=dataset_registry_name,
        settings=config["preprocess"],
        options=preprocess_options,
    script:
        "../scripts/preprocess.py"


rule preprocess_masks:
    input:
        manifest="data/raw/{dataset}/manifest.tsv",
        table="data/processed/{dataset}/items.parquet",
        spec="data/processed/{dataset}/spec.json",
        provenance="data/processed/{dataset}/provenance.json",
    output:
        masks=expand("data/processed/{{dataset}}/masks_{split}.npy", split=SPLITS),
        provenance="data/processed/{dataset}/masks_provenance.json",
    log:
        "logs/preprocess_masks/{dataset}.log",
    conda:
        "../../envs/preprocess.yaml"
    resources:
        mem_mb=small_job_mem_mb,
        runtime=small_job_runtime,
    params:
        code=masks_code,
        registry_name=dataset_registry_name,
        options=preprocess_options,
    script:
        "../scripts/preprocess_masks.py"

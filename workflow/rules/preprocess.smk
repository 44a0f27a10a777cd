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
        options=dataset_options,
    script:
        "../scripts/preprocess.py"

rule extract_features:
    input:
        table="data/processed/{dataset}/items.parquet",
        spec="data/processed/{dataset}/spec.json",
        arrays=expand("data/processed/{{dataset}}/{split}.npy", split=SPLITS),
        provenance="data/processed/{dataset}/provenance.json",
        weights=local_weights_file,
        raw_manifest=slide_manifest,
    output:
        features=expand(
            "results/features/{{dataset}}/{{backbone}}/{{res}}/{split}.npy",
            split=SPLITS,
        ),
        index="results/features/{dataset}/{backbone}/{res}/index.parquet",
        spec="results/features/{dataset}/{backbone}/{res}/spec.json",
        provenance="results/features/{dataset}/{backbone}/{res}/provenance.json",
    log:
        "logs/extract_features/{dataset}/{backbone}/{res}.log",
    benchmark:
        "results/benchmarks/extract_features/{dataset}/{backbone}/{res}.tsv"
    conda:
        "../../envs/extract.yaml"
    threads: 2
    resources:
        mem_mb=extraction_mem_mb,
        runtime=extraction_runtime,
        gpu=1,
    params:
        code=code_digest("medprobe.stages.extract"),
        settings=config["extract"],
        weights=weights_params,
    script:
        "../scripts/extract_features.py"

rule download:
    output:
        manifest="data/raw/{dataset}/manifest.tsv",
        provenance="data/raw/{dataset}/provenance.json",
    params:
        options=dataset_options,
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../scripts/download.py"

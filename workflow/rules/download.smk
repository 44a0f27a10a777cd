rule download:
    input:
        code=stage_code("medprobe.stages.download"),
    output:
        manifest="data/raw/{dataset}/manifest.tsv",
        provenance="data/raw/{dataset}/provenance.json",
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        options=dataset_options,
    script:
        "../scripts/download.py"

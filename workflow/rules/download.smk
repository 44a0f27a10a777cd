rule download:
    input:
        unpack(user_table_file),
    output:
        manifest="data/raw/{dataset}/manifest.tsv",
        provenance="data/raw/{dataset}/provenance.json",
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        code=code_digest("medprobe.stages.download"),
        options=download_options,
        downloads_dir=config["download"]["cache_dir"],
    script:
        "../scripts/download.py"

rule tile_qc:
    input:
        table="data/processed/{dataset}/items.parquet",
        spec="data/processed/{dataset}/spec.json",
        manifest="data/raw/{dataset}/manifest.tsv",
    output:
        report(
            directory("results/figures/tiles_{dataset}"),
            patterns=["{slide}.png"],
            caption="../report/tile_qc.rst",
            category="Slides",
        ),
    log:
        "logs/tile_qc/{dataset}.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.stages.slide_figures"),
        n_slides=config["figures"]["slides"],
    script:
        "../scripts/tile_qc.py"


rule attention_maps:
    input:
        attention=attention_source("attention.parquet"),
        predictions=attention_source("predictions.parquet"),
        table="data/processed/{dataset}/items.parquet",
        spec="data/processed/{dataset}/spec.json",
        tiles="data/processed/{dataset}/test.npy",
        manifest="data/raw/{dataset}/manifest.tsv",
    output:
        report(
            directory("results/figures/attention_{dataset}"),
            patterns=["{slide}.png"],
            caption="../report/attention.rst",
            category="Slides",
        ),
    log:
        "logs/attention_maps/{dataset}.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.stages.slide_figures"),
        n_slides=config["figures"]["slides"],
    script:
        "../scripts/attention_maps.py"

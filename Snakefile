from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS),
    backbone="|".join(BACKBONES),
    res=r"\d+",
    probe="|".join(PROBES),
    seed=r"\d+",


include: "workflow/rules/download.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        "results/metrics.csv",
        "results/ro-crate-metadata.json",
        figures=expand(
            "results/figures/{figure}.{ext}", figure=FIGURES, ext=["png", "pdf"]
        ),

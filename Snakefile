from snakemake.utils import min_version, validate

min_version("9.0")


# A suite given with --configfile replaces the default demo suite rather than being merged into it
# (Snakemake merges nested keys, which would silently add the demo's datasets to every suite).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS),
    backbone="|".join(BACKBONES),
    res=r"\d+",
    probe="|".join(CLASSIFIERS) or "(?!)",
    head="|".join(SEG_HEADS) or "(?!)",
    seed=r"\d+",


include: "workflow/rules/download.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/slides.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        "results/metrics.csv",
        "results/ro-crate-metadata.json",
        figures=expand(
            "results/figures/{figure}.{ext}", figure=FIGURES, ext=["png", "pdf"]
        ),
        fewshot=fewshot_figure_targets(),
        overlays=overlay_targets(),
        slides=slide_figure_targets(),

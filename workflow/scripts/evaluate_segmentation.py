import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.evaluate_segmentation import evaluate_segmentation_stage

with log_to(snakemake.log[0]):
    evaluate_segmentation_stage(
        dict(snakemake.wildcards.items()),
        dict(snakemake.params.settings),
        predictions=snakemake.input.predictions,
        upstream=snakemake.input.provenance,
        processed_dir=str(Path(snakemake.input.table).parent),
        manifest=snakemake.input.manifest,
        metrics=snakemake.output.metrics,
        cases=snakemake.output.cases,
        provenance=snakemake.output.provenance,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
    )

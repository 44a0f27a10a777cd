import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.logs import log_to
from medprobe.stages.evaluate import evaluate_stage

with log_to(snakemake.log[0]):
    evaluate_stage(
        dict(snakemake.wildcards.items()),
        dict(snakemake.params.settings),
        predictions=snakemake.input.predictions,
        upstream=snakemake.input.provenance,
        items=snakemake.input.table,
        dataset_spec=snakemake.input.spec,
        metrics=snakemake.output.metrics,
        provenance=snakemake.output.provenance,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
    )

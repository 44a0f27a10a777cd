import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.logs import log_to
from medprobe.stages.aggregate import aggregate_stage

with log_to(snakemake.log[0]):
    aggregate_stage(
        list(snakemake.input.metrics),
        metrics_out=snakemake.output.metrics,
        provenance_dir=snakemake.output.provenance,
    )

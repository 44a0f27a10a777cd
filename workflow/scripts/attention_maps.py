import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.slide_figures import attention_maps_stage

with log_to(snakemake.log[0]):
    run = Path(snakemake.input.attention).parent  # results/probes/<dataset>/<backbone>/<res>/<probe>/seed<n>
    attention_maps_stage(snakemake.input.attention, snakemake.input.predictions,
                         str(Path(snakemake.input.table).parent), snakemake.input.manifest, snakemake.output[0],
                         snakemake.params.n_slides, source="/".join(run.parts[-4:]))

import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.slide_figures import tile_qc_stage

with log_to(snakemake.log[0]):
    tile_qc_stage(str(Path(snakemake.input.table).parent), snakemake.input.manifest, snakemake.output[0],
                  snakemake.params.n_slides)

import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.logs import log_to
from medprobe.stages.overlays import overlays_stage

with log_to(snakemake.log[0]):
    overlays_stage(snakemake.wildcards.dataset, list(snakemake.input.cases), snakemake.output.png,
                   snakemake.output.pdf)

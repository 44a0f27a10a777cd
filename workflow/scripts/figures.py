import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.figures import draw_figures
from medprobe.logs import log_to

with log_to(snakemake.log[0]):
    draw_figures(snakemake.input.metrics, list(snakemake.output), snakemake.params.metric)

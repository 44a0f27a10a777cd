import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.crate import write_run_crate
from medprobe.logs import log_to

with log_to(snakemake.log[0]):
    write_run_crate(
        ".",
        config_files=list(snakemake.params.configfiles),
        metrics_csv=snakemake.input.metrics,
        provenance_dir=snakemake.input.provenance,
        figures=list(snakemake.input.figures),
        out=snakemake.output.crate,
    )

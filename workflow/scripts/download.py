import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.logs import log_to
from medprobe.stages.download import download_stage

with log_to(snakemake.log[0]):
    download_stage(
        snakemake.wildcards.dataset,
        dict(snakemake.params.options),
        downloads_dir=snakemake.params.downloads_dir,
        manifest=snakemake.output.manifest,
        provenance=snakemake.output.provenance,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
    )

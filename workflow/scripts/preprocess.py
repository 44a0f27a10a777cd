import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from medprobe.logs import log_to
from medprobe.stages.preprocess import preprocess_stage

with log_to(snakemake.log[0]):
    preprocess_stage(
        snakemake.wildcards.dataset,
        snakemake.params.registry_name,
        dict(snakemake.params.settings),
        dict(snakemake.params.options),
        manifest=snakemake.input.manifest,
        upstream=snakemake.input.provenance,
        outputs=dict(snakemake.output.items()),
        rule=snakemake.rule,
        log_path=snakemake.log[0],
    )

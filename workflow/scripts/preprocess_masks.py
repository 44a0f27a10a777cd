import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.preprocess_masks import preprocess_masks_stage

with log_to(snakemake.log[0]):
    preprocess_masks_stage(
        snakemake.wildcards.dataset,
        snakemake.params.registry_name,
        dict(snakemake.params.options),
        manifest=snakemake.input.manifest,
        processed_dir=str(Path(snakemake.input.table).parent),
        upstream=snakemake.input.provenance,
        provenance=snakemake.output.provenance,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
    )

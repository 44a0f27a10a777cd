import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.segment import segment_stage

with log_to(snakemake.log[0]):
    segment_stage(
        snakemake.wildcards.head,
        dict(snakemake.params.settings),
        int(snakemake.wildcards.seed),
        grids_dir=str(Path(snakemake.input.grids_provenance).parent),
        processed_dir=str(Path(snakemake.input.table).parent),
        manifest=snakemake.input.manifest,
        upstream={"patch_grids": snakemake.input.grids_provenance,
                  "preprocess_masks": snakemake.input.masks_provenance},
        out_dir=str(Path(snakemake.output.provenance).parent),
        threads=snakemake.threads,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
    )

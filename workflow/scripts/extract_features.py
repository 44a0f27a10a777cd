import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.extract import extract_stage

with log_to(snakemake.log[0]):
    extract_stage(
        snakemake.wildcards.dataset,
        snakemake.wildcards.backbone,
        int(snakemake.wildcards.res),
        dict(snakemake.params.settings),
        dict(snakemake.params.weights),
        processed_dir=str(Path(snakemake.input.table).parent),
        upstream=snakemake.input.provenance,
        out_dir=str(Path(snakemake.output.index).parent),
        threads=snakemake.threads,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
        raw_manifest=snakemake.input.raw_manifest or None,
    )

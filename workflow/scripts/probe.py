import workflow_package  # noqa: F401  (puts this checkout's medprobe first on sys.path)

from pathlib import Path

from medprobe.logs import log_to
from medprobe.stages.probe import probe_stage

with log_to(snakemake.log[0]):
    probe_stage(
        snakemake.wildcards.probe,
        dict(snakemake.params.settings),
        int(snakemake.wildcards.seed),
        feature_dir=str(Path(snakemake.input.index).parent),
        upstream=snakemake.input.provenance,
        predictions=snakemake.output.predictions,
        provenance=snakemake.output.provenance,
        threads=snakemake.threads,
        rule=snakemake.rule,
        log_path=snakemake.log[0],
        attention_path=getattr(snakemake.output, "attention", None),
        train_feature_dir=(str(Path(snakemake.input.train_index).parent)
                           if hasattr(snakemake.input, "train_index") else None),
        train_upstream=getattr(snakemake.input, "train_provenance", None),
    )

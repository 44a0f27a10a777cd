rule evaluate:
    input:
        predictions="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/predictions.parquet",
        provenance="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/provenance.json",
        table="data/processed/{dataset}/items.parquet",
        spec="data/processed/{dataset}/spec.json",
    output:
        metrics="results/evaluate/{dataset}/{backbone}/{res}/{probe}/seed{seed}/metrics.csv",
        provenance="results/evaluate/{dataset}/{backbone}/{res}/{probe}/seed{seed}/provenance.json",
    log:
        "logs/evaluate/{dataset}/{backbone}/{res}/{probe}/seed{seed}.log",
    conda:
        "../../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=small_job_mem_mb,
        runtime=small_job_runtime,
        disk_mb=1000,
    params:
        code=code_digest("medprobe.stages.evaluate"),
        settings=config["evaluate"],
    script:
        "../scripts/evaluate.py"

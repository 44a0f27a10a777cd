rule probe:
    input:
        unpack(transfer_features),
        features=expand(
            "results/features/{{dataset}}/{{backbone}}/{{res}}/{split}.npy",
            split=SPLITS,
        ),
        index="results/features/{dataset}/{backbone}/{res}/index.parquet",
        spec="results/features/{dataset}/{backbone}/{res}/spec.json",
        provenance="results/features/{dataset}/{backbone}/{res}/provenance.json",
    output:
        predictions="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/predictions.parquet",
        provenance="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/provenance.json",
    log:
        "logs/probe/{dataset}/{backbone}/{res}/{probe}/seed{seed}.log",
    conda:
        "../../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=small_job_mem_mb,
        runtime=small_job_runtime,
        disk_mb=1000,
    params:
        code=code_digest("medprobe.stages.probe"),
        settings=probe_params,
    script:
        "../scripts/probe.py"


# Bag probes (MIL) also write each test instance's attention weight, which the attention heatmaps draw.
ruleorder: probe_bags > probe


use rule probe as probe_bags with:
    output:
        predictions="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/predictions.parquet",
        attention="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/attention.parquet",
        provenance="results/probes/{dataset}/{backbone}/{res}/{probe}/seed{seed}/provenance.json",
    wildcard_constraints:
        probe="|".join(BAG_PROBES) or "(?!)",

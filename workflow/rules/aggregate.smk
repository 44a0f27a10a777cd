rule aggregate:
    input:
        metrics=evaluation_targets(),
    output:
        metrics=report(
            "results/metrics.csv",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
        provenance=directory("results/provenance"),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.stages.aggregate"),
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        metrics="results/metrics.csv",
    output:
        resolution_png=report(
            "results/figures/metric_vs_resolution.png",
            caption="../report/metric_vs_resolution.rst",
            category="Figures",
        ),
        resolution_pdf="results/figures/metric_vs_resolution.pdf",
        heatmap_png=report(
            "results/figures/heatmap.png",
            caption="../report/heatmap.rst",
            category="Figures",
        ),
        heatmap_pdf="results/figures/heatmap.pdf",
    log:
        "logs/figures.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.figures"),
        metric=config["figures"]["metric"],
    script:
        "../scripts/figures.py"


rule fewshot_figure:
    input:
        metrics="results/metrics.csv",
    output:
        png=report(
            "results/figures/fewshot.png",
            caption="../report/fewshot.rst",
            category="Figures",
        ),
        pdf="results/figures/fewshot.pdf",
    log:
        "logs/fewshot_figure.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.figures"),
        metric=config["figures"]["metric"],
    script:
        "../scripts/figures.py"


rule crate:
    input:
        metrics="results/metrics.csv",
        provenance="results/provenance",
        figures=[*rules.figures.output, *fewshot_figure_targets()],
    output:
        crate="results/ro-crate-metadata.json",
    log:
        "logs/crate.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_digest("medprobe.crate"),
        configfiles=[os.path.relpath(path) for path in workflow.configfiles],
    script:
        "../scripts/crate.py"

"""Figures from the long metrics table: metric vs resolution, a dataset x backbone heatmap, few-shot curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medprobe.metrics_table import read_metrics  # noqa: E402

PROBE_STYLES = ("-", "--", ":", "-.")
# Fixed metadata so the same table gives the same PDF bytes.
PDF_METADATA = {"CreationDate": None, "Creator": "medprobe", "Producer": None}
PNG_METADATA = {"Software": "medprobe"}


def save(fig: plt.Figure, paths: list[str]) -> None:
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        metadata = PDF_METADATA if path.endswith(".pdf") else PNG_METADATA
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def headline(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of one metric, averaged over seeds (CIs averaged too: a display choice, stated in captions)."""
    keys = ["dataset", "task", "control", "backbone", "resolution", "probe"]
    return rows.groupby(keys, as_index=False)[["value", "ci_low", "ci_high"]].mean()


def metric_vs_resolution(data: pd.DataFrame, metric: str) -> plt.Figure:
    panels = data[["dataset", "task"]].drop_duplicates().sort_values(["dataset", "task"]).values.tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    backbones = sorted(data["backbone"].unique())
    probes = sorted(data["probe"].unique())
    colours = plt.get_cmap("tab10")
    for ax, (dataset, task) in zip(axes[0], panels):
        panel = data[(data["dataset"] == dataset) & (data["task"] == task)]
        for b, backbone in enumerate(backbones):
            for p, probe in enumerate(probes):
                line = panel[(panel["backbone"] == backbone) & (panel["probe"] == probe)].sort_values("resolution")
                if line.empty:
                    continue
                ax.plot(line["resolution"], line["value"], PROBE_STYLES[p % len(PROBE_STYLES)],
                        marker="o", color=colours(b), label=f"{backbone} / {probe}")
                ax.fill_between(line["resolution"], line["ci_low"], line["ci_high"],
                                color=colours(b), alpha=0.08)
        if metric == "auroc":
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        control = " (control: chance expected)" if panel["control"].any() else ""
        ax.set_title(f"{dataset} / {task}{control}", fontsize=9)
        ax.set_xlabel("input resolution (px)")
        ax.set_xticks(sorted(panel["resolution"].unique()))
        ax.set_ylabel(metric)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def heatmap(data: pd.DataFrame, metric: str) -> plt.Figure:
    """Rows dataset/task, columns backbone; one panel per probe; best resolution per cell."""
    probes = sorted(data["probe"].unique())
    best = data.groupby(["dataset", "task", "backbone", "probe"], as_index=False)["value"].max()
    rows = sorted({f"{d} / {t}" for d, t in zip(best["dataset"], best["task"])})
    cols = sorted(best["backbone"].unique())
    fig, axes = plt.subplots(1, len(probes), figsize=(1.2 * len(cols) * len(probes) + 2.5,
                                                      0.6 * len(rows) + 2), squeeze=False)
    for ax, probe in zip(axes[0], probes):
        grid = np.full((len(rows), len(cols)), np.nan)
        for _, r in best[best["probe"] == probe].iterrows():
            grid[rows.index(f"{r['dataset']} / {r['task']}"), cols.index(r["backbone"])] = r["value"]
        image = ax.imshow(grid, cmap="viridis", vmin=0.5 if metric == "auroc" else None,
                          vmax=1.0, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows if ax is axes[0][0] else [], fontsize=8)
        ax.set_title(probe, fontsize=9)
    fig.suptitle(f"best {metric} over resolutions", fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    return fig


def fewshot_curves(rows: pd.DataFrame, metric: str) -> plt.Figure:
    """Metric against shots per class, one panel per dataset and task, one colour per backbone and one line
    style per resolution; the line is the mean over draws (seeds), the band their min to max."""
    panels = rows[["dataset", "task", "probe"]].drop_duplicates().sort_values(["dataset", "task", "probe"])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    backbones = sorted(rows["backbone"].unique())
    resolutions = sorted(rows["resolution"].unique())
    colours = plt.get_cmap("tab10")
    for ax, (dataset, task, probe) in zip(axes[0], panels.values.tolist()):
        panel = rows[(rows["dataset"] == dataset) & (rows["task"] == task) & (rows["probe"] == probe)]
        for (backbone, res), line in panel.groupby(["backbone", "resolution"]):
            draws = line.groupby("shots")["value"].agg(["mean", "min", "max"]).sort_index()
            colour = colours(backbones.index(backbone))
            ax.plot(draws.index, draws["mean"], PROBE_STYLES[resolutions.index(res) % len(PROBE_STYLES)],
                    marker="o", color=colour, label=f"{backbone} / {res} px")
            ax.fill_between(draws.index, draws["min"], draws["max"], color=colour, alpha=0.1)
        if metric == "auroc":
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        shots = sorted(panel["shots"].unique())
        ax.set_xticks(shots, [str(n) for n in shots])
        ax.set_xlabel("training examples per class")
        ax.set_ylabel(metric)
        control = " (control: chance expected)" if panel["control"].any() else ""
        ax.set_title(f"{dataset} / {task} / {probe}{control}", fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def summary_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows for the resolution and heatmap figures: every probe trained on the whole train split, and each
    few-shot probe at its largest shot count (named so, e.g. "fewshot (16-shot)")."""
    few_shot = rows["shots"].notna()
    largest = rows[few_shot].groupby(["dataset", "probe"])["shots"].transform("max")
    at_largest = rows[few_shot][rows[few_shot]["shots"] == largest]
    at_largest = at_largest.assign(probe=at_largest["probe"] + " (" + at_largest["shots"].astype(str) + "-shot)")
    return pd.concat([rows[~few_shot], at_largest], ignore_index=True)


def draw_figures(metrics_csv: str, outputs: list[str], metric: str) -> None:
    """`outputs` holds <name>.png/.pdf paths for any of the names metric_vs_resolution, heatmap and fewshot."""
    rows = read_metrics(metrics_csv).query("metric == @metric")
    if rows.empty:
        raise ValueError(f"{metrics_csv}: no rows for metric '{metric}'")
    for name in dict.fromkeys(Path(p).stem for p in outputs):
        if name not in ("metric_vs_resolution", "heatmap", "fewshot"):
            raise ValueError(f"no figure named '{name}': outputs must be metric_vs_resolution, heatmap or fewshot")
        if name == "fewshot":
            few_shot = rows[rows["shots"].notna()]
            if few_shot.empty:
                raise ValueError(f"{metrics_csv}: no few-shot rows for metric '{metric}' to draw")
            figure = fewshot_curves(few_shot, metric)
        else:
            figure = {"metric_vs_resolution": metric_vs_resolution, "heatmap": heatmap}[name](
                headline(summary_rows(rows)), metric)
        save(figure, [p for p in outputs if Path(p).stem == name])

"""How often a label independent of the pixels gets a 95% CI that contains 0.5, on a finished run's features.

A control task's one draw of labels says little on its own: every backbone x resolution x probe row
of a dataset shares that draw and its test set, so the rows move together. This script redraws the
control labels many times at random per patient (the dataset's own prevalence), reruns the
pipeline's probes on the run's own cached features with the run's own config, and scores each
row's AUROC with the pipeline's patient-level bootstrap CI. It prints, per row, the coverage of
the nominal CI (the share of draws whose CI contains 0.5) and the mean AUROC, then the share of
draws in which every row's CI contains 0.5 at once; the run's actual draw is scored alongside.

    make demo   # or any run that has results/features/<dataset>/
    python benchmarks/control_coverage.py [--dataset demo_cxr] [--draws 200] [--config config/config.yaml]

The last line printed is the share of draws in which all rows' CIs contain 0.5.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from snakemake.utils import validate
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from medprobe.config import SCHEMA
from medprobe.evaluate.metrics import bootstrap_ci, macro_auroc
from medprobe.probes.registry import get_probe
from medprobe.splits import SPLITS
from medprobe.stages.probe import select_tokens, vector_inputs


def feature_sets(results: Path, dataset: str) -> dict[tuple[str, int], dict]:
    """(backbone, resolution) -> features per split, items per split, and the control task of the run."""
    sets = {}
    for spec_path in sorted((results / "features" / dataset).glob("*/*/spec.json")):
        folder = spec_path.parent
        spec = json.loads(spec_path.read_text())
        index = pd.read_parquet(folder / "index.parquet")
        parts = {s: index.query("split == @s").sort_values("row") for s in SPLITS}
        arrays = {s: np.load(folder / f"{s}.npy", mmap_mode="r") for s in SPLITS}
        sets[(folder.parent.name, int(folder.name))] = {"spec": spec, "parts": parts, "arrays": arrays}
    if not sets:
        raise SystemExit(f"no features under {results / 'features' / dataset}: run the pipeline first (make demo)")
    return sets


def probe_inputs(entry: dict, features: str) -> dict[str, np.ndarray]:
    """What the probe stage hands a vector probe, per split."""
    return {s: vector_inputs(select_tokens(entry["arrays"][s], entry["spec"]["tokens"], features), entry["parts"][s])
            for s in SPLITS}


def control_task(spec: dict, dataset: str) -> tuple[str, str]:
    controls = [(name, task["labels"][0]) for name, task in spec["tasks"].items() if task.get("control")]
    if len(controls) != 1 or spec["tasks"][controls[0][0]]["type"] != "binary":
        raise SystemExit(f"{dataset}: expected one binary control task, found {controls}")
    return controls[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--dataset", default="demo_cxr")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="seed of the label draws (draw d uses seed + d)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    config = yaml.safe_load(args.config.read_text())
    validate(config, str(SCHEMA))  # as the Snakefile does: the schema's defaults filled in
    evaluate = config["evaluate"]
    eval_seed = int(config["seeds"][0])
    probes = {name: params for name, params in config["probes"].items()
              if get_probe(name)["kind"] == "vector" and not get_probe(name).get("few_shot")}
    sets = feature_sets(args.results, args.dataset)
    first = next(iter(sets.values()))
    task_name, label = control_task(first["spec"], args.dataset)
    column = f"label_{label}"

    patients = np.unique(np.concatenate([part["patient_id"].to_numpy() for part in first["parts"].values()]))
    actual = pd.concat(first["parts"].values()).drop_duplicates("patient_id").set_index("patient_id")[column]
    prevalence = float(actual.mean())
    rows = [(backbone, res, probe) for (backbone, res) in sets for probe in probes]
    inputs = {(backbone, res, probe): probe_inputs(sets[(backbone, res)], probes[probe].get("features", "all"))
              for backbone, res, probe in rows}
    print(f"{args.dataset}/{task_name}: {len(patients)} patients, prevalence {prevalence:.3f}, "
          f"{len(rows)} rows, {args.draws} draws, n_bootstrap {evaluate['n_bootstrap']}, ci {evaluate['ci']}",
          flush=True)

    def score(patient_label: pd.Series) -> list[tuple[float, float, float]]:
        out = []
        for backbone, res, probe in rows:
            parts = sets[(backbone, res)]["parts"]
            y = {s: parts[s]["patient_id"].map(patient_label).to_numpy()[:, None] for s in SPLITS}
            params = {k: v for k, v in probes[probe].items() if k not in ("seeds", "features")}
            x = inputs[(backbone, res, probe)]
            scores, _ = get_probe(probe)["run"](x["train"], y["train"], x["val"], y["val"], x["test"],
                                                params, "binary", eval_seed)
            ci = bootstrap_ci(y["test"], scores, parts["test"]["patient_id"].to_numpy(), "binary", [label],
                              n_boot=evaluate["n_bootstrap"], seed=eval_seed, ci=evaluate["ci"],
                              threshold=evaluate["threshold"])["auroc"]
            out.append((macro_auroc(y["test"], scores, "binary"), ci[0], ci[1]))
        return out

    start = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        observed = score(actual)
        draws = []
        for d in tqdm(range(args.draws), desc="control draws", unit="draw"):
            rng = np.random.default_rng(args.seed + d)
            draws.append(score(pd.Series((rng.random(len(patients)) < prevalence).astype(int), index=patients)))
    values = np.array(draws)  # (draws, rows, [auroc, low, high])
    contains = (values[..., 1] <= 0.5) & (0.5 <= values[..., 2])

    print(f"{'backbone':<20}{'res':>5} {'probe':<8}{'coverage':>9}{'mean AUROC':>12}{'sd':>7}   this run's draw")
    for j, (backbone, res, probe) in enumerate(rows):
        auroc, low, high = observed[j]
        print(f"{backbone:<20}{res:>5} {probe:<8}{contains[:, j].mean():>9.3f}{values[:, j, 0].mean():>12.3f}"
              f"{values[:, j, 0].std(ddof=1):>7.3f}   {auroc:.3f} ({low:.3f}-{high:.3f})")
    observed_in = sum(low <= 0.5 <= high for _, low, high in observed)
    n_all = int(contains.all(axis=1).sum())
    print(f"per-row coverage {contains.mean():.3f} (nominal {evaluate['ci']}); this run's draw: {observed_in} of "
          f"{len(rows)} CIs contain 0.5; {time.perf_counter() - start:.0f} s")
    print(f"share of draws in which all {len(rows)} CIs contain 0.5: {n_all / args.draws:.3f} "
          f"({n_all}/{args.draws})")


if __name__ == "__main__":
    main()

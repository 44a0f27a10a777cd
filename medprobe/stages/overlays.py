"""Overlay figure of a segmentation dataset: image, truth and prediction for a spread of test cases (best,
middle, worst by Dice) from the dataset's best head, backbone and resolution (macro Dice over test cases)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def overlays_stage(dataset: str, cases_paths: list[str], png: str, pdf: str) -> None:
    from medprobe.masks import segmentation_task
    from medprobe.overlays import overlay_figure, pick_cases
    from medprobe.stages.segment import volume_rows

    per_case = {path: pd.read_csv(path).groupby("case_id")["dice"].mean() for path in cases_paths}
    best = max(cases_paths, key=lambda path: (per_case[path].mean(), path))  # ties: a fixed order
    parts = Path(best).parts  # results/evaluate/<dataset>/<backbone>/<res>/<head>/seed<seed>/cases.csv
    backbone, res, head, seed = parts[-5], parts[-4], parts[-3], parts[-2]
    prediction = np.load(Path("results/segment", dataset, backbone, res, head, seed, "predictions.npy"))
    processed = Path("data/processed", dataset)
    spec = json.loads((processed / "spec.json").read_text())
    images = np.load(processed / "test.npy", mmap_mode="r")
    truth = np.load(processed / "masks_test.npy", mmap_mode="r")
    rows = volume_rows(pd.read_parquet(processed / "items.parquet"), "test").set_index("item_id")
    chosen = []
    for case_id in pick_cases(per_case[best], n=4):
        item = rows.loc[case_id]
        if spec["dimensionality"] == "3d":  # the slice with the most labelled truth
            start, stop = int(item["slice_start"]), int(item["slice_stop"])
            index = start + int(np.argmax((truth[start:stop] > 0).sum(axis=(1, 2))))
            name = f"{case_id}, slice {index - start}"
        else:
            index, name = int(item["row"]), str(case_id)
        chosen.append({"image": images[index, 0], "truth": truth[index], "prediction": prediction[index],
                       "name": name, "dice": float(per_case[best][case_id])})
    _, task = segmentation_task(spec["tasks"])
    overlay_figure(chosen, png, pdf, title=f"{dataset}: {head} on {backbone} at {res} px ({seed}), test cases",
                   class_names=["background", *task["labels"]])

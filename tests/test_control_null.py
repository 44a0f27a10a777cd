"""The control task's premise: a label independent of the pixels scores at chance, on average.

One control draw can land a couple of standard errors from 0.5 by chance (the demo's rows share
one draw, so they move together). What must hold is that the chain — generated DICOM,
preprocessing, patient-level split, probes, AUROC — has no bias: over many independent per-patient
label draws on the same images, the mean AUROC is 0.5 within its standard error.
"""

import numpy as np
import pandas as pd
import pytest

from medprobe.datasets.demo_cxr import generate
from medprobe.datasets.registry import get_dataset
from medprobe.download import write_manifest
from medprobe.evaluate.metrics import macro_auroc
from medprobe.stages.probe import select_tokens
from medprobe.preprocess import preprocess_dataset
from medprobe.probes.registry import get_probe

N_DRAWS = 20
PARAMS = {"knn": {"k": [10, 20], "temperature": 0.07},
          "logreg": {"c_min": 1e-4, "c_max": 1e2, "c_num": 7, "max_iter": 500}}


@pytest.fixture(scope="module")
def pooled_pixels(tmp_path_factory):
    raw, out = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("processed")
    generate(raw, n_patients=200, seed=11)
    write_manifest(raw)
    settings = {"size": 32, "resize_policy": "pad", "voi_fallback": "percentile", "percentiles": [0.5, 99.5],
                "on_error": "fail"}
    preprocess_dataset("demo_cxr", get_dataset("demo_cxr"), raw, raw / "manifest.tsv", out, settings, {})
    items = pd.read_parquet(out / "items.parquet")
    features = {}
    for split in ("train", "val", "test"):
        images = np.load(out / f"{split}.npy").astype(np.float32) / 255
        pooled = images.reshape(len(images), 8, 4, 8, 4).mean(axis=(2, 4))  # the pixels baseline, pool 4
        features[split] = select_tokens(pooled.reshape(len(images), 1, -1), ["pixels"], "all")
    return items, features


@pytest.mark.parametrize("probe", ["logreg", "knn"])
def test_random_patient_labels_score_at_chance_on_average(pooled_pixels, probe):
    items, x = pooled_pixels
    patients = items["patient_id"].unique()
    run = get_probe(probe)["run"]
    aurocs = []
    for draw in range(N_DRAWS):
        rng = np.random.default_rng(1000 + draw)
        label = dict(zip(patients, (rng.random(len(patients)) < 0.4).astype(int)))
        y = {s: items[items["split"] == s].sort_values("row")["patient_id"].map(label).to_numpy()[:, None]
             for s in x}
        scores, _ = run(x["train"], y["train"], x["val"], y["val"], x["test"], PARAMS[probe], "binary", 0)
        aurocs.append(macro_auroc(y["test"], scores, "binary"))
    mean, standard_error = np.mean(aurocs), np.std(aurocs, ddof=1) / np.sqrt(N_DRAWS)
    assert abs(mean - 0.5) < 3 * standard_error, (mean, standard_error, aurocs)
    assert np.std(aurocs) > 0.01  # the draws really differ

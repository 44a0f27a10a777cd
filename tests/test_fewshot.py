"""Few-shot probe: n units per class, nested seeded draws from train only, fixed-setting classifiers."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from medprobe.figures import draw_figures, headline, summary_rows
from medprobe.metrics_table import metrics_frame, read_metrics, write_metrics
from medprobe.probes.fewshot import draw_few_shot, run_fewshot
from medprobe.probes.knn import knn_scores


def patients_with_items(n_patients=40, n_labels=2, seed=0, missing=0.0):
    """Each patient 1-3 items; multi-label 0/1 targets with a share missing (-1)."""
    rng = np.random.default_rng(seed)
    units = np.repeat([f"p{i:03d}" for i in range(n_patients)], rng.integers(1, 4, n_patients))
    y = (rng.random((len(units), n_labels)) < 0.3).astype(np.int64)
    y[rng.random(y.shape) < missing] = -1
    return units, y


def held_classes(units, y, chosen, label, value):
    """Chosen units holding class `value` of `label` on a known item."""
    return {u for u in chosen if ((units == u) & (y[:, label] == value)).any()}


def test_a_draw_holds_n_units_per_class_of_every_label_and_all_their_items():
    units, y = patients_with_items(missing=0.2)
    draws = draw_few_shot(y, units, [1, 2, 4], "multilabel", 2, seed=3)
    for n, draw in draws.items():
        chosen = set(draw["units"])
        assert set(units[draw["rows"]]) == chosen
        assert list(draw["rows"]) == list(np.flatnonzero(np.isin(units, list(chosen))))  # every item of a unit
        for label in range(2):
            for value in (0, 1):
                assert len(held_classes(units, y, chosen, label, value)) >= n
        assert len(chosen) <= 2 * 2 * n
        assert not draw["short"]


def test_draws_are_nested_seeded_and_free_of_row_order():
    units, y = patients_with_items()
    draws = draw_few_shot(y, units, [1, 2, 4, 8], "multilabel", 2, seed=5)
    sizes = [set(draws[n]["units"]) for n in (1, 2, 4, 8)]
    assert all(small <= large for small, large in zip(sizes, sizes[1:]))
    order = np.random.default_rng(1).permutation(len(units))
    shuffled = draw_few_shot(y[order], units[order], [1, 2, 4, 8], "multilabel", 2, seed=5)
    assert all(shuffled[n]["units"] == draws[n]["units"] for n in draws)
    other = draw_few_shot(y, units, [1, 2, 4, 8], "multilabel", 2, seed=6)
    assert any(other[n]["units"] != draws[n]["units"] for n in draws)


def test_a_unit_counts_for_a_class_only_where_its_label_is_known():
    units = np.array(["a", "b", "c", "d"])
    y = np.array([[1], [-1], [0], [-1]])
    draw = draw_few_shot(y, units, [2], "binary", 1, seed=0)[2]
    assert draw["units"] == ["a", "c"]
    assert draw["short"] == {"label column 0 = 1": 1, "label column 0 = 0": 1}


def test_item_units_count_images_not_patients():
    units, y = patients_with_items(n_patients=10)
    items = np.array([f"i{i}" for i in range(len(units))])
    draw = draw_few_shot(y, items, [2], "multilabel", 2, seed=0)[2]
    assert len(draw["rows"]) == len(draw["units"]) <= 8


def test_logreg_is_scikit_learns_at_the_fixed_c_on_the_drawn_items():
    units, _ = patients_with_items(n_patients=50, seed=1)
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (len(units), 2))
    x = rng.normal(size=(len(units), 6)) + y @ np.ones((2, 6))
    test_x = rng.normal(size=(30, 6))
    scores, info = run_fewshot(x, y, test_x, {"shots": [2, 4], "c": 0.5}, "multilabel", seed=4, train_units=units,
                               n_columns=2)
    draws = draw_few_shot(y, units, [2, 4], "multilabel", 2, seed=4)
    for n in (2, 4):
        rows = draws[n]["rows"]
        assert info["shots"][n]["units"] == draws[n]["units"]
        for label in range(2):
            scaler = StandardScaler().fit(x[rows])
            model = LogisticRegression(C=0.5, max_iter=1000).fit(scaler.transform(x[rows]), y[rows, label])
            expected = model.predict_proba(scaler.transform(test_x))[:, 1]
            np.testing.assert_allclose(scores[n][:, label], expected, rtol=1e-10, atol=1e-12)


def test_knn_caps_k_at_the_draw_and_matches_the_vote():
    units, y = patients_with_items(n_patients=30, n_labels=1, seed=3)
    x = np.random.default_rng(0).normal(size=(len(units), 5))
    test_x = np.random.default_rng(1).normal(size=(9, 5))
    params = {"shots": [1, 8], "classifier": "knn", "k": 6}
    scores, info = run_fewshot(x, y, test_x, params, "binary", seed=0, train_units=units, n_columns=1)
    draws = draw_few_shot(y, units, [1, 8], "binary", 1, seed=0)
    for n in (1, 8):
        rows = draws[n]["rows"]
        k = min(6, len(rows))
        assert info["shots"][n]["k"] == k
        np.testing.assert_array_equal(scores[n], knn_scores(x[rows], y[rows], test_x, k, 0.07, task_type="binary"))
    assert info["shots"][1]["k"] < 6


def test_multiclass_draws_each_class_and_scores_every_column():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 4)) + np.eye(3, 4)[y] * 3
    units = np.array([f"p{i}" for i in range(60)])
    scores, info = run_fewshot(x, y, x[:12], {"shots": [3]}, "multiclass", seed=1, train_units=units, n_columns=3)
    drawn = y[np.isin(units, info["shots"][3]["units"])]
    assert np.bincount(drawn).tolist() == [3, 3, 3]
    assert scores[3].shape == (12, 3)
    np.testing.assert_allclose(scores[3].sum(axis=1), 1.0)


def test_more_shots_learn_a_separable_task():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (400, 1))
    x = rng.normal(size=(400, 32)) + 1.5 * y
    units = np.array([f"p{i}" for i in range(400)])
    test_y = rng.integers(0, 2, 300)
    test_x = rng.normal(size=(300, 32)) + 1.5 * test_y[:, None]
    auroc = {n: np.mean([roc_auc_score(test_y, run_fewshot(x, y, test_x, {"shots": [n]}, "binary", seed=s,
                                                           train_units=units, n_columns=1)[0][n][:, 0])
                         for s in range(5)]) for n in (1, 16)}
    assert auroc[16] > 0.95 and auroc[16] >= auroc[1]


def test_a_class_short_in_train_gives_what_it_has_and_says_so():
    units = np.array([f"p{i}" for i in range(12)])
    y = np.array([[1], [1]] + [[0]] * 10)
    x = np.random.default_rng(0).normal(size=(12, 3))
    _, info = run_fewshot(x, y, x, {"shots": [4]}, "binary", seed=0, train_units=units, n_columns=1)
    assert info["shots"][4]["short"] == {"label column 0 = 1": 2}
    assert info["shots"][4]["n_units"] == 6


def test_a_class_absent_from_train_is_an_error_naming_it():
    units = np.array(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"no example of \['label column 1 = 1'\]"):
        run_fewshot(np.zeros((3, 2)), np.array([[1, 0], [0, 0], [1, 0]]), np.zeros((1, 2)), {"shots": [1]},
                    "multilabel", seed=0, train_units=units, n_columns=2)


@pytest.mark.parametrize("params, message", [({"shot": [1]}, "unknown few-shot parameters"),
                                             ({"shots": [0]}, "integers >= 1"),
                                             ({"classifier": "svm"}, "classifier must be one of")])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        run_fewshot(np.zeros((2, 2)), np.array([[0], [1]]), np.zeros((1, 2)), params, "binary", seed=0,
                    train_units=np.array(["a", "b"]), n_columns=1)


def test_the_probe_stage_never_reads_the_validation_split(tiny_run, tmp_path):
    """With the val features destroyed, few-shot still runs (and gives the same scores); logreg cannot."""
    from medprobe.stages.probe import probe_stage

    source = tiny_run / "results" / "features" / "demo_cxr" / "pixels" / "32"
    features = tmp_path / "features"
    shutil.copytree(source, features)
    run = dict(probe="fewshot", params={"shots": [1, 2]}, seed=0, feature_dir=str(features),
               upstream=str(source / "provenance.json"))
    probe_stage(**run, predictions=str(tmp_path / "intact.parquet"), provenance=str(tmp_path / "intact.json"))
    (features / "val.npy").write_bytes(b"not an array")
    probe_stage(**run, predictions=str(tmp_path / "broken.parquet"), provenance=str(tmp_path / "broken.json"))
    intact, broken = pd.read_parquet(tmp_path / "intact.parquet"), pd.read_parquet(tmp_path / "broken.parquet")
    pd.testing.assert_frame_equal(intact, broken)
    assert sorted(intact["shots"].unique()) == [1, 2]
    assert "val" not in json.loads((tmp_path / "broken.json").read_text())["inputs"]
    with pytest.raises(ValueError):
        probe_stage(**{**run, "probe": "logreg", "params": {"c_min": 1.0, "c_max": 1.0, "c_num": 1, "max_iter": 100}},
                    predictions=str(tmp_path / "logreg.parquet"), provenance=str(tmp_path / "logreg.json"))


def test_figures_draw_few_shot_curves_and_put_the_largest_shot_count_in_the_summaries(tmp_path):
    rows = [{"dataset": "d", "task": "t", "control": False, "backbone": b, "resolution": 32, "probe": "fewshot",
             "shots": n, "seed": s, "metric": "auroc", "value": 0.5 + n / 40 + s / 100, "ci_low": 0.4, "ci_high": 0.9,
             "n_boot": 10, "n_evaluated": 5, "n_total": 5, "provenance_id": "x"}
            for b in ("a", "b") for n in (1, 4, 16) for s in (0, 1)]
    write_metrics(metrics_frame(rows), tmp_path / "metrics.csv")
    assert "shots" in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert ",fewshot,16,1,auroc," in (tmp_path / "metrics.csv").read_text()  # an integer, not 16.0
    outputs = [str(tmp_path / f"{name}.png") for name in ("fewshot", "heatmap", "metric_vs_resolution")]
    draw_figures(str(tmp_path / "metrics.csv"), outputs, "auroc")
    assert all((tmp_path / f"{name}.png").stat().st_size > 0 for name in ("fewshot", "heatmap"))
    summary = headline(summary_rows(read_metrics(tmp_path / "metrics.csv")))
    assert set(summary["probe"]) == {"fewshot (16-shot)"}
    with pytest.raises(ValueError, match="no figure named 'curves'"):
        draw_figures(str(tmp_path / "metrics.csv"), [str(tmp_path / "curves.png")], "auroc")

import pandas as pd
import pytest

from medprobe.splits import SplitError, assign_patient_splits, check_patient_level, random_patient_split


def items(patients):
    return pd.DataFrame({"item_id": [f"i{k}" for k in range(len(patients))], "patient_id": patients})


def test_patient_level_split_is_attached():
    table = pd.DataFrame({"patient_id": ["a", "b", "c"], "split": ["train", "val", "test"]})
    merged = assign_patient_splits(items(["a", "a", "b", "c"]), table, "demo")
    assert merged["split"].tolist() == ["train", "train", "val", "test"]


def test_patient_in_two_splits_is_an_error_naming_the_patient():
    table = pd.DataFrame({"patient_id": ["a", "a", "b", "c"], "split": ["train", "test", "val", "test"]})
    with pytest.raises(SplitError, match=r"demo: patient\(s\) listed in more than one split, e.g. \['a'\]"):
        assign_patient_splits(items(["a", "b", "c"]), table, "demo")


def test_leak_in_item_table_is_detected():
    frame = items(["a", "a", "b", "c"]).assign(split=["train", "test", "val", "test"])
    message = r"1 patient\(s\) appear in more than one split .* e.g. a: \[.test., .train.\]"
    with pytest.raises(SplitError, match=message):
        check_patient_level(frame, "demo")


def test_patient_without_split_is_an_error():
    table = pd.DataFrame({"patient_id": ["a", "b"], "split": ["train", "test"]})
    with pytest.raises(SplitError, match=r"have a patient with no split, e.g. patients \['z'\]"):
        assign_patient_splits(items(["a", "b", "z"]), table, "demo")


def test_unknown_split_name_and_empty_split():
    with pytest.raises(SplitError, match="unknown split name"):
        check_patient_level(items(["a"]).assign(split=["training"]), "demo")
    with pytest.raises(SplitError, match=r"split\(s\) \['val'\] contain no items"):
        check_patient_level(items(["a", "b"]).assign(split=["train", "test"]), "demo")


def test_random_split_keeps_shares_with_many_tiny_strata():
    """25 patients in 25 different strata (Kvasir's videos): val must still get its share."""
    patients = pd.Series([f"p{i:02d}" for i in range(25)])
    strata = pd.Series({f"p{i:02d}": f"classes-{i}" for i in range(25)})
    split = random_patient_split(patients, {"train": 0.8, "val": 0.2}, seed=3, strata=strata)
    assert split.value_counts().to_dict() == {"train": 20, "val": 5}
    again = random_patient_split(patients.sample(frac=1, random_state=1), {"train": 0.8, "val": 0.2}, 3, strata)
    assert again.sort_index().equals(split.sort_index())  # independent of listing order


def test_random_split_is_stratified():
    patients = pd.Series([f"p{i:03d}" for i in range(200)])
    strata = pd.Series({p: "pos" if i < 40 else "neg" for i, p in enumerate(patients)})
    split = random_patient_split(patients, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0, strata=strata)
    positives = split[patients.map(strata) == "pos"].value_counts()
    assert abs(positives["test"] - 6) <= 2 and abs(positives["val"] - 6) <= 2
    assert abs(split.value_counts()["test"] - 30) <= 1

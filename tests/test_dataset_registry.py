"""The dataset registry: every entry complete, every download pinned or honestly marked, every adapter real."""

import importlib
import json
from pathlib import Path

import pytest

from medprobe.cli import main
from medprobe.datasets.registry import DATASETS, active_tasks, get_dataset, resolve_options
from medprobe.registry import resolve

REQUIRED = {"title", "modality", "dimensionality", "format", "channels", "adapter", "source", "split", "tasks",
            "size", "license", "citation", "access"}


def test_at_least_fifteen_datasets():
    assert len(DATASETS) >= 15


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_entry_is_complete(name):
    entry = DATASETS[name]
    assert REQUIRED <= set(entry), REQUIRED - set(entry)
    assert entry["access"] in {"open", "account", "local"} and entry["channels"] in {1, 3}
    adapter = importlib.import_module(entry["adapter"])
    assert callable(adapter.read_items)
    reader = {"2d": "iter_images", "3d": "iter_volumes"}.get(entry["dimensionality"])  # wsi: the pipeline tiles
    assert reader is None or callable(getattr(adapter, reader))
    if any(task["type"] == "segmentation" for task in entry["tasks"].values()):
        assert callable(adapter.iter_masks)
    if "build" in entry:  # a template (users' own tables): its build function fills in the tasks
        assert callable(resolve(entry["build"])) and entry["access"] == "local"
    for task in entry["tasks"].values():
        assert task["type"] in {"binary", "multilabel", "multiclass", "segmentation"} and task["labels"]
    source = entry["source"]
    if source["kind"] == "http":
        for file in source["files"]:
            assert file["url"].startswith("https://"), file
            assert file.get("sha256") or file.get("md5") or file.get("checksum_note"), file["name"]
    elif source["kind"] == "local":
        assert entry["access"] in {"account", "local"} and source["layout"].strip()
        assert callable(adapter.check_layout)
    resolve_options(name, {})  # the defaults are valid


def test_options_are_checked():
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['path'\]"):
        resolve_options("nih_chestxray14", {"path": "/somewhere"})
    with pytest.raises(ValueError, match="size=100 is not one of"):
        resolve_options("pathmnist", {"size": 100})


def test_conditional_task_follows_the_option():
    chexpert = get_dataset("chexpert")
    assert "competition5_uncertain" not in active_tasks(chexpert, resolve_options("chexpert", {}))
    assert "competition5_uncertain" in active_tasks(chexpert, resolve_options("chexpert", {"uncertain": "extra"}))


def test_local_dataset_without_path_says_what_to_do(tmp_path):
    from medprobe.download import fetch_dataset

    with pytest.raises(ValueError, match=r"(?s)RSNA.*set the dataset option `path`.*\n.*stage_2_train_labels.csv"):
        fetch_dataset("rsna_pneumonia", tmp_path / "raw", {}, tmp_path / "downloads")
    assert not (tmp_path / "raw").exists()


def test_cli_lists_the_registry(capsys):
    assert main(["datasets"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["name", "modality", "dim"] and len(table) == len(DATASETS) + 1
    chexpert = next(line for line in table if line.startswith("chexpert "))
    assert "account" in chexpert and "local" in chexpert
    assert main(["datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == set(DATASETS)


def test_every_dataset_option_can_be_set_in_the_config():
    """The config schema rejects unknown keys, so an option missing from it could never be used."""
    import yaml

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    allowed = set(schema["properties"]["datasets"]["additionalProperties"]["properties"])
    missing = {(name, option) for name, entry in DATASETS.items() for option in entry.get("options", {})
               if option not in allowed}
    assert not missing

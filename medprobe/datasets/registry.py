"""Dataset registry: one plain-data entry per dataset, merged from medprobe.datasets.entries.*.

Keys of an entry:
- title, modality, dimensionality ("2d" | "3d" | "wsi"), format (raw file format), channels (1 | 3)
- adapter: dotted module that reads this layout (see medprobe.datasets.adapters)
- source: {"kind": "generator", "function", "options"} | {"kind": "http", "files": [{name, url,
  sha256 and/or md5, extract, into, when}]} | {"kind": "local", "layout": text shown to the user}
- options: dataset options this entry accepts (name -> {"default", "choices", "doc"}); every
  entry also accepts the generic options in GENERIC_OPTIONS
- split: the split policy (medprobe.splits.apply_split_policy); labels: adapter-specific
- tasks: task name -> {"type": binary|multilabel|multiclass, "labels": [...], "control": bool}
  A control task has labels drawn independently of the pixels; it must score at chance.
- preprocess: defaults for this dataset's preprocess settings (override the config's global block)
- intensity: "normalised" when the source already scaled voxels to [0, 1] (no CT window, no MR percentiles)
- size (download size, human-readable), license, citation, homepage, access ("open" | "account")
- build (optional): "module:function" (template, options) -> the entry, for a kind whose options and files define
  its tasks, dimensionality and modality (users' own tables); use dataset_entry, not get_dataset, to run one
- options_file (optional): the option naming a YAML file of further options (the config's own take precedence)
"""

from __future__ import annotations

from medprobe.datasets.entries import (chest_xray, demo, endoscopy, medmnist, mri, pathology, segmentation, user,
                                       volumes_local)
from medprobe.registry import lookup, resolve

FAMILIES = (demo, medmnist, chest_xray, mri, endoscopy, segmentation, volumes_local, pathology, user)
DATASETS: dict[str, dict] = {}
for _family in FAMILIES:
    _clash = set(DATASETS) & set(_family.ENTRIES)
    if _clash:
        raise RuntimeError(f"dataset names defined twice: {sorted(_clash)}")
    DATASETS.update(_family.ENTRIES)

GENERIC_OPTIONS = {
    "base": "registry entry this config dataset is an instance of",
    "split_seed": "seed of seeded patient-level splits (default 0)",
    "preprocess": "per-dataset overrides of the preprocess settings",
    "resolutions": "the subset of the config's resolutions this dataset runs at",
    "transfer_from": "another config dataset whose train and val splits train the probes scored on this one's test",
}
SOURCE_OPTIONS = {"http": {"mirror": "base URL serving the same file names (tests, local mirrors)",
                           "allow_unpinned": "download files whose publisher gives no checksum"},
                  "local": {"path": "folder holding your local copy"}}


def get_dataset(name: str) -> dict:
    return lookup(DATASETS, "dataset", name)


def resolve_options(name: str, options: dict) -> dict:
    """The entry's option defaults plus the given options, each checked against what it accepts."""
    entry = get_dataset(name)
    declared = entry.get("options", {})
    if entry.get("options_file") and options.get(entry["options_file"]):
        from medprobe.datasets.user_table import load_spec

        options = {**load_spec(options[entry["options_file"]]), **options}
    accepted = {**GENERIC_OPTIONS, **SOURCE_OPTIONS.get(entry["source"]["kind"], {}), **declared}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"dataset '{name}' does not take option(s) {unknown}; it accepts {sorted(accepted)}")
    resolved = {key: spec["default"] for key, spec in declared.items() if "default" in spec}
    resolved.update(options)
    for key, spec in declared.items():
        if "choices" in spec and resolved.get(key) not in spec["choices"]:
            raise ValueError(f"dataset '{name}': option {key}={resolved.get(key)!r} is not one of {spec['choices']}")
    return resolved


def dataset_entry(name: str, options: dict) -> dict:
    """The entry a config dataset runs with: its registry entry, or the one built from its options (see `build`)."""
    entry = get_dataset(name)
    return resolve(entry["build"])(entry, resolve_options(name, options)) if "build" in entry else entry


def preprocess_settings(name: str, global_settings: dict, options: dict) -> dict:
    """Config's global preprocess block < the entry's defaults < the dataset's own overrides."""
    return {**global_settings, **get_dataset(name).get("preprocess", {}), **options.get("preprocess", {})}


def active_tasks(entry: dict, options: dict) -> dict:
    """The entry's tasks whose `when` conditions match the dataset options (e.g. CheXpert's extra output)."""
    return {name: task for name, task in entry["tasks"].items()
            if all(options.get(key) == value for key, value in task.get("when", {}).items())}

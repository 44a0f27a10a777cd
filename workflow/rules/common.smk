"""Helpers shared by the workflow: registry checks, target lists, input and params functions."""

import sys
from functools import lru_cache

# The medprobe package beside this Snakefile, even when Snakemake runs from an env without it.
sys.path.insert(0, workflow.basedir)

from medprobe.backbones.registry import get_backbone
from medprobe.codedeps import code_sha256
from medprobe.config import sort_keys
from medprobe.datasets import registry as dataset_registry
from medprobe.datasets.registry import active_tasks, resolve_options
from medprobe.probes.registry import get_probe
from medprobe.registry import UnknownEntryError

sort_keys(config)


def source_options(dataset):
    return {k: v for k, v in config["datasets"][dataset].items() if k != "base"}


@lru_cache(maxsize=None)
def dataset_entry(dataset):
    """The registry entry a config dataset runs with (built from its options and table for a user dataset)."""
    return dataset_registry.dataset_entry(
        config["datasets"][dataset].get("base", dataset), source_options(dataset)
    )


def check_registry_names():
    """Unknown dataset or backbone names, options a dataset does not take, or a user dataset whose declaration
    or table cannot work, fail at DAG build."""
    try:
        for name in config["datasets"]:
            dataset_entry(name)
        for name in config["backbones"]:
            get_backbone(name)
    except (UnknownEntryError, ValueError) as err:
        raise ValueError(f"config: {err}") from None


def check_resolutions():
    """A ViT needs an input side that is a multiple of its patch size; a dataset's own resolutions must be
    among the config's."""
    for name, options in config["datasets"].items():
        extra = sorted(set(options.get("resolutions", [])) - set(config["resolutions"]))
        if extra:
            raise ValueError(
                f"config: datasets.{name}.resolutions {extra} are not in resolutions {config['resolutions']}"
            )
    for name in config["backbones"]:
        patch = get_backbone(name).get("patch_size")
        bad = [res for res in config["resolutions"] if patch and res % patch]
        if bad:
            raise ValueError(
                f"config: resolutions {bad} are not multiples of backbone '{name}' patch size "
                f"{patch}; use e.g. {[max(patch, round(r / patch) * patch) for r in bad]}"
            )


def check_transfers():
    """A transfer test set trains on another dataset of the config, extracted at every resolution it runs at."""
    for name, options in config["datasets"].items():
        source = options.get("transfer_from")
        if source is None:
            continue
        if source == name or source not in config["datasets"]:
            raise ValueError(
                f"config: datasets.{name}.transfer_from '{source}' must name another dataset of the config"
            )
        if config["datasets"][source].get("transfer_from"):
            raise ValueError(
                f"config: datasets.{name}.transfer_from '{source}' is itself a transfer set"
            )
        own = options.get("resolutions") or config["resolutions"]
        theirs = config["datasets"][source].get("resolutions") or config["resolutions"]
        if set(own) - set(theirs):
            raise ValueError(
                f"config: datasets.{name} runs at {sorted(own)} but its transfer source '{source}' "
                f"only at {sorted(theirs)}"
            )


check_registry_names()
check_resolutions()
check_transfers()

DATASETS = sorted(config["datasets"])
BACKBONES = config["backbones"]
RESOLUTIONS = [str(res) for res in config["resolutions"]]
CLASSIFIERS = sorted(
    p for p in config["probes"] if get_probe(p)["kind"] != "segmentation"
)
BAG_PROBES = [p for p in CLASSIFIERS if get_probe(p)["kind"] == "bags"]
FEW_SHOT_PROBES = [p for p in CLASSIFIERS if get_probe(p).get("few_shot")]
SEG_HEADS = sorted(
    p for p in config["probes"] if get_probe(p)["kind"] == "segmentation"
)
SEEDS = [str(seed) for seed in config["seeds"]]
SPLITS = ["train", "val", "test"]
FIGURES = ["metric_vs_resolution", "heatmap"]


def masks_code(wildcards):
    adapter = dataset_entry(wildcards.dataset)["adapter"]
    return code_digest("medprobe.stages.preprocess_masks", adapter)


def code_digest(*modules):
    """sha256 of the medprobe files a stage runs, as a param: editing one reruns exactly the rules
    that run it (Snakemake tracks a rule's script, not the modules the script imports). A param,
    not inputs, keeps a 27,000-job DAG fast to build and ignores touches that change no byte.
    """
    return code_sha256(*modules)


def preprocess_code(wildcards):
    """The preprocess stage's code plus the adapter it loads by name for this dataset."""
    adapter = dataset_entry(wildcards.dataset)["adapter"]
    return code_digest("medprobe.stages.preprocess", adapter)


def extraction_scale(wildcards):
    """Relative compute of one extraction job: tokens per image x model size, against a ViT-S at 224 px."""
    entry = get_backbone(wildcards.backbone)
    tokens = (int(wildcards.res) / entry.get("patch_size", 16)) ** 2
    return tokens / 196 * entry.get("params_m", 22) / 22


def extraction_mem_mb(wildcards, attempt):
    """Host memory: 4 GB base (batch, arrays), the fp32 weights, activations; grows with each retry."""
    entry = get_backbone(wildcards.backbone)
    tokens = (int(wildcards.res) / entry.get("patch_size", 16)) ** 2
    activations = 2000 * tokens / 196 * entry.get("embed_dim", 384) / 384
    return int((4000 + 4 * entry.get("params_m", 0) + activations) * attempt)


def extraction_runtime(wildcards, attempt):
    """Minutes: generous for CPU runs of big grids; doubles with each retry."""
    return int((30 + 30 * extraction_scale(wildcards)) * 2 ** (attempt - 1))


def small_job_mem_mb(wildcards, attempt):
    return 2000 * attempt


def small_job_runtime(wildcards, attempt):
    return 20 * attempt


def dataset_registry_name(wildcards):
    """A dataset's registry entry: its own name, or the `base` it is an instance of."""
    return config["datasets"][wildcards.dataset].get("base", wildcards.dataset)


def download_options(wildcards):
    """What the download depends on: changing a dataset's preprocess overrides, split seed or resolutions
    must not fetch it again."""
    options = config["datasets"][wildcards.dataset]
    return {
        k: v
        for k, v in options.items()
        if k not in ("preprocess", "split_seed", "resolutions", "transfer_from")
    }


def preprocess_options(wildcards):
    options = config["datasets"][wildcards.dataset]
    return {
        k: v for k, v in options.items() if k not in ("resolutions", "transfer_from")
    }


def local_weights_file(wildcards):
    """A configured local weights file is an input, so replacing it reruns that backbone's extraction."""
    path = config["weights"]["files"].get(wildcards.backbone)
    return [path] if path else []


def weights_params(wildcards):
    return {
        "cache_dir": config["weights"]["cache_dir"],
        "file": config["weights"]["files"].get(wildcards.backbone),
    }


def probe_params(wildcards):
    """Only this probe's parameters, so editing one probe reruns only its jobs (its seed list is a wildcard)."""
    return {k: v for k, v in config["probes"][wildcards.probe].items() if k != "seeds"}


def transfer_features(wildcards):
    """A transfer test set's probes read the source dataset's features at the same backbone and resolution."""
    source = config["datasets"][wildcards.dataset].get("transfer_from")
    if source is None:
        return {}
    folder = f"results/features/{source}/{wildcards.backbone}/{wildcards.res}"
    return {
        "train_index": f"{folder}/index.parquet",
        "train_spec": f"{folder}/spec.json",
        "train_provenance": f"{folder}/provenance.json",
        **{f"train_{split}": f"{folder}/{split}.npy" for split in SPLITS},
    }


def probe_seeds(probe):
    """A probe's own seed list (MIL: several trainings) or the config's."""
    return [str(seed) for seed in config["probes"][probe].get("seeds", [])] or SEEDS


def slide_manifest(wildcards):
    """Slide datasets' tiles are read from the raw slides at extraction: their manifest is an input."""
    if dataset_entry(wildcards.dataset)["dimensionality"] == "wsi":
        return f"data/raw/{wildcards.dataset}/manifest.tsv"
    return []


def user_table_file(wildcards):
    """A user dataset's table and spec file are inputs of its download (validation): editing either reruns
    everything downstream."""
    name = config["datasets"][wildcards.dataset].get("base", wildcards.dataset)
    if name != "user_table":
        return {}
    from medprobe.datasets.user_table import table_file

    options = resolve_options(name, source_options(wildcards.dataset))
    spec = {"spec": options["spec"]} if options.get("spec") else {}
    return {"table": str(table_file(options)), **spec}


@lru_cache(maxsize=None)
def task_kinds(dataset):
    """'classification' and/or 'segmentation': what the dataset's tasks (under its options) ask for."""
    tasks = active_tasks(
        dataset_entry(dataset),
        resolve_options(
            config["datasets"][dataset].get("base", dataset), source_options(dataset)
        ),
    )
    return {
        "segmentation" if t["type"] == "segmentation" else "classification"
        for t in tasks.values()
    }


@lru_cache(maxsize=None)
def patch_grid_capable(backbone):
    """Segmentation heads need patch tokens: ViTs (timm, transformers) and the pixel baseline, not ConvNeXt
    or open_clip's own towers."""
    entry = get_backbone(backbone)
    return (
        entry["source"] in ("timm", "hf_transformers", "pixels")
        and "pooled" not in entry["tokens"]
    )


@lru_cache(maxsize=None)
def applies(probe, dataset, backbone):
    spec = get_probe(probe)
    if dataset_entry(dataset)["dimensionality"] not in spec["dims"]:
        return False
    if spec["kind"] == "segmentation":
        return "segmentation" in task_kinds(dataset) and patch_grid_capable(backbone)
    return "classification" in task_kinds(dataset)


def dataset_resolutions(dataset):
    """The config's resolutions, or the subset a dataset asks for (e.g. small volumes at one resolution)."""
    chosen = config["datasets"][dataset].get("resolutions")
    return [str(res) for res in chosen] if chosen else RESOLUTIONS


def head_params(wildcards):
    return config["probes"][wildcards.head]


def evaluation_targets(dataset=None):
    """Every metrics file of the grid: each dataset x backbone x resolution x applicable probe x seed."""
    return [
        f"results/evaluate/{d}/{b}/{r}/{p}/seed{s}/metrics.csv"
        for d in ([dataset] if dataset else DATASETS)
        for b in BACKBONES
        for r in dataset_resolutions(d)
        for p in CLASSIFIERS + SEG_HEADS
        if applies(p, d, b)
        for s in probe_seeds(p)
    ]


def overlay_candidates(wildcards):
    """Per-case scores of every segmentation result of a dataset; the overlay shows the best of them."""
    return [
        path.replace("metrics.csv", "cases.csv")
        for path in evaluation_targets(wildcards.dataset)
        if path.split("/")[-3] in SEG_HEADS
    ]


def overlay_predictions(wildcards):
    return [
        path.replace("results/evaluate/", "results/segment/").replace(
            "cases.csv", "predictions.npy"
        )
        for path in overlay_candidates(wildcards)
    ]


def overlay_targets():
    datasets = [
        d
        for d in DATASETS
        if any(applies(h, d, b) for h in SEG_HEADS for b in BACKBONES)
    ]
    return expand(
        "results/figures/overlays_{dataset}.{ext}", dataset=datasets, ext=["png", "pdf"]
    )


def slide_datasets():
    return [d for d in DATASETS if dataset_entry(d)["dimensionality"] == "wsi"]


def attention_run(dataset):
    """The MIL run whose attention the heatmaps draw: the first backbone, resolution and seed of the config."""
    for probe in BAG_PROBES:
        for backbone in BACKBONES:
            if applies(probe, dataset, backbone):
                return f"results/probes/{dataset}/{backbone}/{dataset_resolutions(dataset)[0]}/{probe}/seed{probe_seeds(probe)[0]}"
    return None


def attention_source(filename):
    def source(wildcards):
        return f"{attention_run(wildcards.dataset)}/{filename}"

    return source


def slide_figure_targets():
    return [f"results/figures/tiles_{d}" for d in slide_datasets()] + [
        f"results/figures/attention_{d}" for d in slide_datasets() if attention_run(d)
    ]


def fewshot_figure_targets():
    """The few-shot curves, when the config runs a few-shot probe."""
    if not FEW_SHOT_PROBES:
        return []
    return expand("results/figures/fewshot.{ext}", ext=["png", "pdf"])

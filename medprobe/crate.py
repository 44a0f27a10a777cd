"""A Workflow Run RO-Crate for one pipeline run, so the results can be cited and checked elsewhere.

The crate's root is ``results/``: every result file is a data entity referred to in place (nothing
is copied; only ``ro-crate-metadata.json`` is written), with its sha256 and size, so a reader can
verify the bytes and follow a metric file to its provenance record. Files outside ``results/``
(the Snakefile, config files, raw-data manifests) cannot be data entities of that root, so they are
``#``-identified entities typed ``File`` that carry their hash and their path relative to the crate
in ``identifier``: rocrate loads them back as contextual entities without requiring the bytes.
"""

from __future__ import annotations

import json
import mimetypes
import os
from datetime import datetime
from importlib.metadata import version as installed_version
from pathlib import Path

import yaml
from rocrate.model.computerlanguage import get_lang
from rocrate.model.contextentity import ContextEntity
from rocrate.model.metadata import BASENAME
from rocrate.rocrate import ROCrate

from medprobe.atomic import write_json
from medprobe.hashing import canonical_json, sha256_file
from medprobe.provenance import redact

# Workflow Run Crate 0.5 builds on RO-Crate 1.1 and Workflow RO-Crate 1.0.
CRATE_VERSION = "1.1"
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
# provenance_id is not in the RO-Crate vocabularies; it is the identifier of the lineage record.
EXTRA_TERMS = {"provenance_id": "http://schema.org/identifier"}
LICENSE_ID = "https://spdx.org/licenses/MIT"
ACTION_ID = "#run"


def merge_configs(config_files: list[Path]) -> dict:
    """Later files override earlier ones key by key, as Snakemake merges --configfile."""
    def merge(base: dict, override: dict) -> dict:
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = value
        return merged

    config: dict = {}
    for path in config_files:
        config = merge(config, yaml.safe_load(path.read_text()) or {})
    return config


def file_properties(path: Path) -> dict:
    properties = {"sha256": sha256_file(path), "contentSize": str(path.stat().st_size)}
    media_type = mimetypes.guess_type(path.name)[0]
    if media_type:
        properties["encodingFormat"] = media_type
    return properties


def write_run_crate(workdir: Path, config_files: list[str], metrics_csv: str, provenance_dir: str,
                    figures: list[str], out: str = f"results/{BASENAME}") -> Path:
    """Describe the run whose outputs are under ``workdir`` and write the crate's metadata file.

    Paths are relative to ``workdir``; the crate root is the folder holding ``out``.
    """
    workdir = Path(workdir).resolve()
    out_path = workdir / out
    root = out_path.parent

    def crate_relative(path: str | Path) -> str:
        return (workdir / path).resolve().relative_to(root).as_posix()

    def workdir_relative(path: str | Path) -> str:
        """Where an outside file sits; its bare name when it is outside the workdir too."""
        resolved = (workdir / path).resolve()
        return (resolved.relative_to(workdir) if resolved.is_relative_to(workdir)
                else Path(resolved.name)).as_posix()

    crate = ROCrate(version=CRATE_VERSION)
    crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
    crate.metadata.extra_terms.update(EXTRA_TERMS)

    def add_outside_file(path: str | Path, properties: dict | None = None) -> ContextEntity:
        absolute = (workdir / path).resolve()
        entity_properties = {"@type": "File", "name": absolute.name,
                             **file_properties(absolute), **(properties or {})}
        if absolute.is_relative_to(workdir):
            entity_properties["identifier"] = Path(os.path.relpath(absolute, root)).as_posix()
        return crate.add(ContextEntity(crate, f"#{workdir_relative(path)}", entity_properties))

    # Provenance records: one per per-job metrics file, each embedding its chain to the raw data.
    record_files = sorted(Path(workdir / provenance_dir).glob("*.json"))
    summaries = [json.loads(path.read_text()) for path in record_files]
    stage_records = {record["id"]: record for summary in summaries for record in summary["chain"]}

    # The workflow and the software it ran with.
    packages = sorted({(name, version) for record in stage_records.values()
                       for name, version in record["identity"]["packages"].items()
                       if version != "not installed"})
    software = [crate.add(ContextEntity(crate, f"#software/{name}@{version}", {
        "@type": "SoftwareApplication", "name": name, "version": version,
    })) for name, version in packages]
    language = crate.add(get_lang(crate, "snakemake", version=installed_version("snakemake")))
    workflow = add_outside_file("Snakefile", {
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
        "programmingLanguage": language,
        "softwareRequirements": software,
    })

    # Parameters: one per top-level config section, secrets redacted before anything is added.
    config = redact(merge_configs([workdir / path for path in config_files]))
    formal_parameters, parameter_values = [], []
    for section in sorted(config):
        formal = crate.add_formal_parameter(
            section, "Text", identifier=f"#param/{section}",
            description=f"The '{section}' config section, as canonical JSON.",
        )
        formal_parameters.append(formal)
        parameter_values.append(crate.add(ContextEntity(crate, f"#value/{section}", {
            "@type": "PropertyValue", "name": section, "value": canonical_json(config[section]),
            "exampleOfWork": formal,
        })))
    workflow["input"] = formal_parameters

    # Inputs: the config files and each dataset's raw manifest (named by the download records).
    config_entities = [add_outside_file(path) for path in sorted(set(config_files))]
    manifests = sorted({entry["path"] for record in stage_records.values()
                        if record["identity"]["stage"] == "download"
                        for entry in record["outputs"].values()})
    manifest_entities = [add_outside_file(path) for path in manifests]

    # Outputs: data entities inside the crate root, referred to in place.
    record_entities = {}
    for path, summary in zip(record_files, summaries):
        record_entities[summary["id"]] = crate.add_file(path, dest_path=crate_relative(path), properties={
            "name": f"Provenance record {summary['id']}",
            "about": [f"{record['identity']['stage']}:{record['id']}" for record in summary["chain"]],
            **file_properties(path),
        })
    job_metrics = []
    for summary in sorted(summaries, key=lambda item: crate_relative(item["metrics_file"])):
        path = workdir / summary["metrics_file"]
        job_metrics.append(crate.add_file(path, dest_path=crate_relative(path), properties={
            "provenance_id": summary["id"],
            "isBasedOn": record_entities[summary["id"]],
            **file_properties(path),
        }))
    metrics_table = crate.add_file(workdir / metrics_csv, dest_path=crate_relative(metrics_csv), properties={
        "name": "All metrics, one row per (dataset, task, backbone, resolution, probe, seed, metric)",
        "isBasedOn": job_metrics,
        **file_properties(workdir / metrics_csv),
    })
    figure_entities = [crate.add_file(workdir / path, dest_path=crate_relative(path), properties={
        "isBasedOn": metrics_table, **file_properties(workdir / path),
    }) for path in sorted(figures, key=crate_relative)]

    started = [datetime.fromisoformat(record["run"]["started"]) for record in stage_records.values()]
    finished = [datetime.fromisoformat(record["run"]["finished"]) for record in stage_records.values()]
    action = crate.add_action(workflow, identifier=ACTION_ID, properties={
        "@type": "CreateAction",
        "name": "medprobe pipeline run",
        "startTime": min(started).isoformat(),
        "endTime": max(finished).isoformat(),
    }, object=config_entities + manifest_entities + parameter_values,
        result=[metrics_table, *job_metrics, *record_entities.values(), *figure_entities])

    for profile_id, (name, version) in PROFILES.items():
        crate.root_dataset.append_to("conformsTo", crate.add(ContextEntity(crate, profile_id, {
            "@type": "CreativeWork", "name": name, "version": version,
        })))
    crate.name = "medprobe benchmark run"
    crate.description = ("Frozen vision foundation models probed on medical images: metrics, "
                         "figures and per-metric provenance records of one pipeline run.")
    crate.license = crate.add(ContextEntity(crate, LICENSE_ID, {
        "@type": "CreativeWork", "name": "MIT License", "identifier": "MIT",
    }))
    crate.mainEntity = workflow
    crate.root_dataset["mentions"] = action

    document = crate.metadata.generate()
    root_entity = next(entity for entity in document["@graph"] if entity["@id"] == crate.root_dataset.id)
    root_entity["hasPart"].sort(key=lambda part: part["@id"])
    head = [crate.metadata.id, crate.root_dataset.id]  # descriptor and root first, by convention
    document["@graph"].sort(key=lambda entity: (head.index(entity["@id"]), "") if entity["@id"] in head
                            else (len(head), entity["@id"]))
    write_json(out_path, document)
    return out_path

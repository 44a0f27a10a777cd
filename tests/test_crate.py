"""The run's RO-Crate: result files with hashes, lineage reachable, no secrets, no machine paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from rocrate.rocrate import ROCrate

from medprobe.crate import write_run_crate
from medprobe.hashing import sha256_file

CONFIG_FILES = ["config/config.yaml", "config/tiny.yaml"]
SECRET = "secret-123"


def crate_arguments(workdir: Path, extra_config: list[str] = ()) -> dict:
    figures = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "results" / "figures").iterdir())
    return {"workdir": workdir, "config_files": [*CONFIG_FILES, *extra_config],
            "metrics_csv": "results/metrics.csv", "provenance_dir": "results/provenance", "figures": figures}


@pytest.fixture(scope="module")
def secret_config(tmp_path_factory) -> Path:
    """A config outside the workdir holding secrets both at the top level and nested."""
    path = tmp_path_factory.mktemp("secret") / "secrets.yaml"
    path.write_text(f'hf_token: "{SECRET}"\ndatasets:\n  demo_cxr:\n    API_KEY: "{SECRET}"\n')
    return path


@pytest.fixture(scope="module")
def crate_path(tiny_run: Path, secret_config: Path) -> Path:
    return write_run_crate(**crate_arguments(tiny_run, [str(secret_config)]))


@pytest.fixture(scope="module")
def crate(crate_path: Path) -> ROCrate:
    return ROCrate(crate_path.parent)


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_crate_is_the_results_folder(tiny_run, crate_path):
    assert crate_path == tiny_run.resolve() / "results" / "ro-crate-metadata.json"


def test_result_files_listed_with_their_hashes(tiny_run, crate):
    results = tiny_run / "results"
    summaries = [json.loads(p.read_text()) for p in sorted((results / "provenance").glob("*.json"))]
    job_metrics = [Path(s["metrics_file"]).relative_to("results").as_posix() for s in summaries]
    figures = [p.relative_to(results).as_posix() for p in (results / "figures").iterdir()]
    data_ids = {entity.id for entity in crate.data_entities}
    for relative in ["metrics.csv", *job_metrics, *figures]:
        assert relative in data_ids
        entity = crate.get(relative)
        assert entity["sha256"] == sha256_file(results / relative)
        assert int(entity["contentSize"]) == (results / relative).stat().st_size


def test_metric_file_leads_to_its_lineage_record(tiny_run, crate):
    table = pd.read_csv(tiny_run / "results" / "metrics.csv")
    for prov_id in table["provenance_id"].unique():
        record = crate.get(f"provenance/{prov_id}.json")
        assert record is not None and record["sha256"]
        summary = json.loads((tiny_run / "results" / "provenance" / f"{prov_id}.json").read_text())
        metric_file = crate.get(Path(summary["metrics_file"]).relative_to("results").as_posix())
        assert metric_file["provenance_id"] == prov_id
        assert metric_file["isBasedOn"] is record
        assert record["about"][0] == f"evaluate:{prov_id}" and record["about"][-1].startswith("download:")


def test_run_action_links_workflow_inputs_parameters_and_results(crate):
    workflow = crate.mainEntity
    assert "ComputationalWorkflow" in workflow.type and workflow["sha256"]
    assert workflow["programmingLanguage"]["name"] == "Snakemake"
    assert {app["name"] for app in workflow["softwareRequirements"]} >= {"numpy", "snakemake", "torch"}
    [action] = crate.get_by_type("CreateAction")
    assert action["instrument"] is workflow
    assert action["startTime"] <= action["endTime"]
    result_ids = {entity.id for entity in action["result"]}
    assert {"metrics.csv", "figures/heatmap.png"} <= result_ids
    objects = {entity.id: entity for entity in action["object"]}
    assert "#data/raw/demo_cxr/manifest.tsv" in objects
    assert objects["#config/tiny.yaml"]["identifier"] == "../config/tiny.yaml"
    values = {entity["name"]: entity for entity in objects.values() if entity.type == "PropertyValue"}
    assert json.loads(values["resolutions"]["value"]) == [32, 48]
    assert {p.id for p in workflow["input"]} == {value["exampleOfWork"].id for value in values.values()}


def test_no_secrets_and_no_absolute_paths(tiny_run, crate_path):
    text = crate_path.read_text()
    assert SECRET not in text
    document = json.loads(text)
    values = {entity["name"]: json.loads(entity["value"])
              for entity in document["@graph"] if entity.get("@type") == "PropertyValue"}
    assert values["hf_token"] == "<redacted>"
    assert values["datasets"]["demo_cxr"]["API_KEY"] == "<redacted>"
    assert not [s for s in strings(document) if s.startswith("/")]
    assert str(tiny_run.resolve()) not in text


def test_deterministic_apart_from_times(tiny_run, crate_path, secret_config):
    def without_date(path: Path) -> dict:
        document = json.loads(path.read_text())
        for entity in document["@graph"]:
            entity.pop("datePublished", None)
        return document

    first = without_date(crate_path)
    again = without_date(write_run_crate(**crate_arguments(tiny_run, [str(secret_config)])))
    assert first == again
    ids = [entity["@id"] for entity in first["@graph"]]
    assert ids[:2] == ["ro-crate-metadata.json", "./"] and ids[2:] == sorted(ids[2:])

"""Provenance building blocks: ids, secret redaction, per-stage code closures."""

import json

from medprobe.codedeps import PACKAGE_ROOT, import_closure
from medprobe.provenance import REDACTED, StageRecord, redact


def relative(paths):
    return {str(p.relative_to(PACKAGE_ROOT)) for p in paths}


def test_secrets_are_redacted_at_any_depth():
    params = {"source": {"url": "https://example.org/x.zip", "HF_Token": "hf_abc"},
              "mirrors": [{"api_key": "k1", "name": "m"}], "password_file": "p", "seed": 3}
    assert redact(params) == {"source": {"url": "https://example.org/x.zip", "HF_Token": REDACTED},
                              "mirrors": [{"api_key": REDACTED, "name": "m"}],
                              "password_file": REDACTED, "seed": 3}


def test_record_id_is_the_identity_hash_and_ignores_run_details(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("x")
    out = tmp_path / "out.txt"
    out.write_text("y")
    first = StageRecord("probe", "medprobe.stages.probe", {"k": 1}, inputs={"in": data}).write(
        tmp_path / "a.json", outputs={"out": out})
    second = StageRecord("probe", "medprobe.stages.probe", {"k": 1}, inputs={"in": data}).write(
        tmp_path / "b.json", outputs={"out": out})
    assert first["id"] == second["id"]
    changed = StageRecord("probe", "medprobe.stages.probe", {"k": 2}, inputs={"in": data}).write(
        tmp_path / "c.json", outputs={"out": out})
    assert changed["id"] != first["id"]
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["inputs"]["in"]["sha256"] == record["identity"]["inputs"]["in"]
    assert "stages/probe.py" in {path.split("medprobe/", 1)[1] for path in record["code_files"]}


def test_stage_code_closures_follow_imports_including_lazy_ones():
    probe = relative(import_closure("medprobe.stages.probe"))
    assert {"probes/knn.py", "probes/logreg.py", "probes/registry.py", "stages/probe.py", "__init__.py"} <= probe
    extract = relative(import_closure("medprobe.stages.extract"))
    assert {"backbones/load.py", "features/extract.py"} <= extract
    assert not any(p.startswith("probes/") for p in extract)
    preprocess = relative(import_closure("medprobe.stages.preprocess", "medprobe.datasets.adapters.nih"))
    assert {"io/dicom.py", "datasets/adapters/nih.py", "preprocess.py"} <= preprocess
    assert "datasets/adapters/medmnist.py" not in preprocess  # only the dataset's own adapter


def test_a_torch_stage_records_its_thread_count(tmp_path):
    """On CPU the thread count changes features in the last bits, so a record of a stage that ran torch says it."""
    import torch

    out = tmp_path / "out.txt"
    out.write_text("y")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        record = StageRecord("extract_features", "medprobe.stages.extract", {}).write(tmp_path / "a.json",
                                                                                      outputs={"out": out})
    finally:
        torch.set_num_threads(before)
    assert record["run"]["torch_threads"] == 1

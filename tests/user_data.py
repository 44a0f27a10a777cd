"""Users' own folders, as a user would bring them: real DICOM X-rays, NIfTI and DICOM-series CT volumes with label
maps, and pyramidal TIFF slides, written by the demo generators, each with a table in the user's own words."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from medprobe.datasets import demo_ct, demo_cxr, demo_cxr_seg, demo_wsi

FINDINGS = list(demo_cxr.FINDINGS)
CT_ORGANS = [name for name, value in sorted(demo_ct.LABELS.items(), key=lambda kv: kv[1]) if value]


def xray_folder(root: Path, n_patients: int = 40, seed: int = 2) -> dict:
    """DICOM X-rays with an NIH-style multi-label CSV (findings joined by '|', 'No Finding'), no split column."""
    demo_cxr.generate(root, n_patients=n_patients, seed=seed)
    nih = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    pd.DataFrame({"file": "images/" + nih["Image Index"], "patient": nih["Patient ID"],
                  "findings": nih["Finding Labels"]}).to_csv(root / "findings.csv", index=False)
    return {"base": "user_table", "path": str(root), "table": "findings.csv",
            "columns": {"path": "file", "label": "findings"},
            "task": {"name": "findings", "type": "multilabel", "classes": FINDINGS, "separator": "|",
                     "negative": "No Finding"}}


def ct_folder(root: Path, n_patients: int = 16, seed: int = 3) -> pd.DataFrame:
    """CT volumes (NIfTI files and DICOM series folders) with label maps, and a table holding the split."""
    demo_ct.generate(root, n_patients=n_patients, seed=seed)
    cases = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    split = pd.read_csv(root / "split.csv", dtype=str, keep_default_na=False)
    cases = cases.merge(split, on="patient_id")
    table = pd.DataFrame({"case": cases["case_id"], "path": cases["image"], "patient": cases["patient_id"],
                          "lesion": cases[demo_ct.LESION].map({"1": "lesion", "0": "none"}),
                          "mask": cases["label"], "split": cases["split"]})
    table.to_parquet(root / "cases.parquet", index=False)
    return table


def ct_classification_spec(root: Path) -> Path:
    """A dataset YAML beside the data (its `path` relative to itself), as a user shares a dataset's declaration."""
    spec = {"path": ".", "table": "cases.parquet", "modality": "ct",
            "columns": {"id": "case", "label": "lesion", "split": "split"},
            "task": {"name": "lesion", "type": "binary", "classes": ["none", "lesion"]}}
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root / "dataset.yaml"


def ct_segmentation(root: Path) -> dict:
    return {"base": "user_table", "path": str(root), "table": "cases.parquet", "modality": "ct",
            "columns": {"id": "case", "mask": "mask", "split": "split"},
            "task": {"name": "organs", "type": "segmentation", "classes": CT_ORGANS}}


def lung_folder(root: Path, n_images: int = 40, seed: int = 3) -> dict:
    """PNG radiographs with PNG lung masks (0 background, 1 left, 2 right), the split in the table."""
    demo_cxr_seg.generate(root, n_images=n_images, seed=seed)
    images = pd.read_csv(root / "labels.csv", dtype=str).merge(pd.read_csv(root / "split.csv", dtype=str))
    images.rename(columns={"image": "path", "patient_id": "patient"}).to_csv(root / "lungs.csv", index=False)
    return {"base": "user_table", "path": str(root), "table": "lungs.csv",
            "task": {"name": "lungs", "type": "segmentation", "classes": ["left_lung", "right_lung"]}}


def slide_folder(root: Path, n_slides: int = 14, seed: int = 5) -> pd.DataFrame:
    """Pyramidal TIFF slides (one without an MPP, one blank) with slide-level diagnoses."""
    demo_wsi.generate(root, n_slides=n_slides, seed=seed)
    slides = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    table = pd.DataFrame({"slide": slides["slide"], "patient": slides["patient_id"],
                          "diagnosis": slides[demo_wsi.TUMOR].map({"1": "tumour", "0": "normal"})})
    table.to_csv(root / "slides.csv", index=False)
    return table


def slide_options(root: Path, table: str = "slides.csv", **extra) -> dict:
    return {"base": "user_table", "path": str(root), "table": table, "columns": {"path": "slide", "label": "diagnosis"},
            "task": {"name": "diagnosis", "type": "binary", "classes": ["normal", "tumour"]},
            "preprocess": {"fallback_mpp": 0.5}, **extra}

"""3-D segmentation benchmarks in the Decathlon layout: the Medical Segmentation Decathlon's ten tasks and AMOS22.

MSD archives: the AWS mirror MONAI downloads from, with the md5 MONAI pins for each tar (monai.apps.datasets.
DecathlonDataset.resource / .md5, MONAI 1.6.1). Each tar holds Task<nn>_<Name>/ with dataset.json, imagesTr/,
labelsTr/ and imagesTs/ (unlabelled). Class and channel names are dataset.json's, verbatim (they are checked against
the file); the task's class names are medprobe's snake_case spelling of them, in the same order. Study A evaluates
every task by 5-fold cross-validation on the public training set: the option `fold` picks the test fold.
"""

MSD_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com"
N_FOLDS = 5
MSD_CITATION = ("Antonelli M, Reinke A, Bakas S, et al. The Medical Segmentation Decathlon. Nature Communications "
                "13, 4128 (2022), doi:10.1038/s41467-022-30695-9; Simpson AL, Antonelli M, Bakas S, et al. A large "
                "annotated medical image dataset for the development and evaluation of segmentation algorithms. "
                "arXiv:1902.09063 (2019)")
MSD_NOTES = ("Test labels are withheld (imagesTs/ is unlabelled), so, as study A, medprobe cross-validates on the "
             "public training set: patients are dealt into 5 seeded folds (split_seed); fold `fold` is the test "
             "set, the next fold validation, the other three training. MSD publishes no patient ids: each case "
             "is taken as its own patient.")

# entry: (task folder, title, modality, task name, dataset.json "modality" names, dataset.json class names with
#         medprobe's name for each, md5 of the tar (MONAI), download size (approximate; the md5 is what verifies))
MSD_TASKS = {
    "msd_braintumour": (
        "Task01_BrainTumour", "MSD Task01 brain tumour: gliomas in multi-parametric MRI (BraTS 2016/17)", "mri",
        "tumour", ["FLAIR", "T1w", "t1gd", "T2w"],
        [("edema", "edema"), ("non-enhancing tumor", "non_enhancing_tumor"), ("enhancing tumour", "enhancing_tumour")],
        "240a19d752f0d9e9101544901065d872", "about 7 GB"),
    "msd_heart": (
        "Task02_Heart", "MSD Task02 heart: left atrium in mono-modal MRI", "mri", "left_atrium", ["MRI"],
        [("left atrium", "left_atrium")], "06ee59366e1e5124267b774dbd654057", "about 0.4 GB"),
    "msd_liver": (
        "Task03_Liver", "MSD Task03 liver: liver and tumours in portal-venous CT (LiTS)", "ct", "liver_tumour",
        ["CT"], [("liver", "liver"), ("cancer", "cancer")], "a90ec6c4aa7f6a3d087205e23d4e6397", "about 27 GB"),
    "msd_hippocampus": (
        "Task04_Hippocampus", "MSD Task04 hippocampus: anterior and posterior hippocampus in MRI", "mri",
        "hippocampus", ["MRI"], [("Anterior", "anterior"), ("Posterior", "posterior")],
        "9d24dba78a72977dbd1d2e110310f31b", "about 30 MB"),
    "msd_prostate": (
        "Task05_Prostate", "MSD Task05 prostate: peripheral and transition zones in multi-parametric MRI", "mri",
        "prostate_zones", ["T2", "ADC"], [("PZ", "peripheral_zone"), ("TZ", "transition_zone")],
        "35138f08b1efaef89d7424d2bcc928db", "about 0.2 GB"),
    "msd_lung": (
        "Task06_Lung", "MSD Task06 lung: primary lung cancer in CT", "ct", "lung_tumour", ["CT"],
        [("cancer", "cancer")], "8afd997733c7fc0432f71255ba4e52dc", "about 9 GB"),
    "msd_pancreas": (
        "Task07_Pancreas", "MSD Task07 pancreas: pancreas and pancreatic tumours in portal-venous CT", "ct",
        "pancreas_tumour", ["CT"], [("pancreas", "pancreas"), ("cancer", "cancer")],
        "4f7080cfca169fa8066d17ce6eb061e4", "about 11 GB"),
    "msd_hepaticvessel": (
        "Task08_HepaticVessel", "MSD Task08 hepatic vessels: liver vessels and tumours in CT", "ct",
        "vessels_tumour", ["CT"], [("Vessel", "vessel"), ("Tumour", "tumour")],
        "641d79e80ec66453921d997fbf12a29c", "about 9 GB"),
    "msd_spleen": (
        "Task09_Spleen", "MSD Task09 spleen: spleen in portal-venous CT", "ct", "spleen", ["CT"],
        [("spleen", "spleen")], "410d4a301da4e5b2f6f86ec3ddba524e", "about 1.5 GB"),
    "msd_colon": (
        "Task10_Colon", "MSD Task10 colon: primary colon cancer in CT", "ct", "colon_tumour", ["CT"],
        [("colon cancer primaries", "colon_cancer")], "bad7a188931dc2f6acf72b08eb6202d0", "about 5 GB"),
}
# Hippocampus volumes are about 35 x 50 x 35 voxels: 64 px slices keep every voxel without a 256 px blow-up.
PREPROCESS = {"msd_hippocampus": {"size": 64}}
MR_PERCENTILES = [5, 95]  # study B's MR window, as for the other MR datasets


def _msd_entry(name: str, row: tuple) -> dict:
    folder, title, modality, task, channels, classes, md5, size = row
    options = {"fold": {"default": 0, "choices": list(range(N_FOLDS)),
                        "doc": f"the cross-validation fold used as test set (0-{N_FOLDS - 1}); the next fold is "
                               "validation, the other three train"}}
    if len(channels) > 1:
        options["channel"] = {"default": 0, "choices": list(range(len(channels))),
                              "doc": "the image channel (MR sequence) to use: "
                                     + ", ".join(f"{i} {c}" for i, c in enumerate(channels))}
    return {
        "title": title,
        "modality": modality,
        "dimensionality": "3d",
        "format": "nifti",
        "channels": 1,
        "adapter": "medprobe.datasets.adapters.decathlon",
        "source": {"kind": "http", "files": [
            {"name": f"{folder}.tar", "url": f"{MSD_URL}/{folder}.tar", "md5": md5, "extract": True}]},
        "options": options,
        "labels": {"folder": folder, "classes": [published for published, _ in classes], "channels": channels,
                   "sections": {"training": ""}},
        "split": {"policy": "kfold", "n_folds": N_FOLDS},
        "tasks": {task: {"type": "segmentation", "labels": [ours for _, ours in classes]}},
        "preprocess": {**({"percentiles": MR_PERCENTILES} if modality == "mri" else {}), **PREPROCESS.get(name, {})},
        "size": size,
        "license": "CC BY-SA 4.0",
        "citation": MSD_CITATION,
        "homepage": "http://medicaldecathlon.com/",
        "access": "open",
        "notes": MSD_NOTES + (f" Images hold {len(channels)} channels ({', '.join(channels)}); the option "
                              "`channel` picks one." if len(channels) > 1 else ""),
    }


# AMOS22 (Zenodo record 7155725, doi:10.5281/zenodo.7155725): amos22.zip holds amos22/ with dataset.json, imagesTr/ +
# labelsTr/ (240 scans: 200 CT, 40 MRI), imagesVa/ + labelsVa/ (120: 100 CT, 20 MRI) and imagesTs/ (unlabelled);
# case numbers of 500 and above are MRI (the archive's readme). md5: the one Zenodo lists for the file, as pinned by
# public download scripts; sha256: pinned by torch-em (constantinpape/torch-em,
# torch_em/data/datasets/medical/amos.py), for the same URL. The class names are dataset.json's, "arota" included.
AMOS_CLASSES = [("spleen", "spleen"), ("right kidney", "right_kidney"), ("left kidney", "left_kidney"),
                ("gall bladder", "gall_bladder"), ("esophagus", "esophagus"), ("liver", "liver"),
                ("stomach", "stomach"), ("arota", "aorta"), ("postcava", "postcava"), ("pancreas", "pancreas"),
                ("right adrenal gland", "right_adrenal_gland"), ("left adrenal gland", "left_adrenal_gland"),
                ("duodenum", "duodenum"), ("bladder", "bladder"), ("prostate/uterus", "prostate_uterus")]
AMOS_FILE = {"name": "amos22.zip", "url": "https://zenodo.org/records/7155725/files/amos22.zip?download=1",
             "md5": "67717b2a483ac0744c89c3016b7aaef7",
             "sha256": "d2fbf2c31abba9824d183f05741ce187b17905b8cca64d1078eabf1ba96775c2", "extract": True}
AMOS_NOTES = ("The official validation set (imagesVa/labelsVa) is the test set: the challenge's test labels are "
              "not public. Validation is carved out of the training set by patient (val_fraction, split_seed). "
              "AMOS publishes no patient ids: each scan is taken as its own patient. CT and MRI scans share the "
              "archive; preprocess normalises a dataset's volumes one way (HU window for CT, percentiles for MR), so "
              "the two modalities are two entries over the same download, amos22 (CT) and amos22_mri (MRI).")


def _amos_entry(modality: str) -> dict:
    return {
        "title": f"AMOS22: abdominal multi-organ segmentation, 15 organs ({modality.upper()} scans)",
        "modality": modality,
        "dimensionality": "3d",
        "format": "nifti",
        "channels": 1,
        "adapter": "medprobe.datasets.adapters.decathlon",
        "source": {"kind": "http", "files": [dict(AMOS_FILE)], "cache": "amos22"},  # one 24 GB zip for both
        "labels": {"folder": "amos22", "classes": [published for published, _ in AMOS_CLASSES],
                   "sections": {"training": "trainval", "validation": "test"}, "mri_from_case": 500},
        "split": {"policy": "adapter", "val_fraction": 0.2},
        "tasks": {"organs": {"type": "segmentation", "labels": [ours for _, ours in AMOS_CLASSES]}},
        "preprocess": {"percentiles": MR_PERCENTILES} if modality == "mri" else {},
        "size": "24.2 GB (one zip for both modalities)",
        "license": "CC BY 4.0",
        "citation": "Ji Y, Bai H, Ge C, et al. AMOS: A Large-Scale Abdominal Multi-Organ Benchmark for Versatile "
                    "Medical Image Segmentation. NeurIPS 2022 Datasets and Benchmarks (arXiv:2206.08023). Data: "
                    "doi:10.5281/zenodo.7155725",
        "homepage": "https://amos22.grand-challenge.org/",
        "access": "open",
        "notes": AMOS_NOTES,
    }


ENTRIES: dict[str, dict] = {
    **{name: _msd_entry(name, row) for name, row in MSD_TASKS.items()},
    "amos22": _amos_entry("ct"),
    "amos22_mri": _amos_entry("mri"),
}

"""Whole-slide pathology datasets: CAMELYON16, CAMELYON17 (the test bed for models trained on CAMELYON16) and BCNB.

Slide entries ("dimensionality": "wsi") list one row per slide; the pipeline tiles each slide itself from its
`source_file`, with the entry's `preprocess` tiling settings (medprobe.wsi.tiling.TILING_DEFAULTS). Study A tiles
non-overlapping 224 px tissue tiles; 0.5 µm/px is the usual 20x tile resolution.

CAMELYON files come from the AWS Open Data bucket s3://camelyon-dataset over its public HTTPS endpoint. Files marked
`index` are the label tables: the adapter's select_files reads them to name the slides a capped run needs, so a
trial run fetches only those (see medprobe.datasets.adapters.camelyon).
"""

ENTRIES: dict[str, dict] = {}

CAMELYON_URL = "https://camelyon-dataset.s3.amazonaws.com"
CAMELYON_LICENSE = "CC0 1.0 (https://registry.opendata.aws/camelyon/ and the challenge data page)"
CAMELYON_DATA_NOTE = ("Litjens G, Bandi P, Ehteshami Bejnordi B, et al. 1399 H&E-stained sentinel lymph node sections "
                      "of breast cancer patients: the CAMELYON dataset. GigaScience 7(6): giy065, 2018")
# The bucket holds the publishers' checksum lists (CAMELYON16/checksums.md5 and CAMELYON17/checksums.md5, as public
# download scripts read them), but medprobe has not vendored their values.
CAMELYON_UNPINNED = ("the publisher's checksum list (checksums.md5 beside the images in the bucket) is not vendored in "
                     "medprobe, so CAMELYON files are downloaded unpinned; their sha256 is recorded in the download's "
                     "provenance")
# Study A tiles every WSI set alike; CAMELYON17 must match CAMELYON16 exactly for the transfer test to mean anything.
CAMELYON_TILING = {"target_mpp": 0.5, "tile_size": 224}

# ---- CAMELYON16 ------------------------------------------------------------------------------------------------

# The release (CAMELYON16/README.md of the bucket): normal_001-160 and tumor_001-111 form the 270 training slides,
# test_001-130 the test set. The organisers removed two files: normal_086 (misclassified, renamed tumor_111) and
# test_049 (a duplicate slide), leaving the official 270 / 129. test_114 stays: its slide label is valid; only its
# lesion annotations are not exhaustive, which matters to lesion-level scoring alone. Study A's reference split
# (AttriMIL, MedCAI/AttriMIL datasets/camelyon16_test.csv) is the same 129 test slides, test_114 included.
C16_SLIDES = {
    "normal": [n for n in range(1, 161) if n != 86],
    "tumor": list(range(1, 112)),
    "test": [n for n in range(1, 131) if n != 49],
}
C16_REFERENCE = "evaluation/reference.csv"

ENTRIES["camelyon16"] = {
    "title": "CAMELYON16: H&E whole-slide images of sentinel lymph nodes, breast cancer metastasis vs normal",
    "modality": "pathology",
    "dimensionality": "wsi",
    "format": "tiff",  # generic pyramidal TIFF (ASAP converter), level 0 about 0.23-0.24 µm/px in the TIFF tags
    "channels": 3,
    "adapter": "medprobe.datasets.adapters.camelyon",
    "source": {"kind": "http", "files": [
        # Slide labels of the test set: one row per slide, name then Tumor/Normal (then lesion details).
        {"name": C16_REFERENCE, "url": f"{CAMELYON_URL}/CAMELYON16/{C16_REFERENCE}", "index": True,
         "checksum_note": CAMELYON_UNPINNED},
        *({"name": f"images/{kind}_{number:03d}.tif",
           "url": f"{CAMELYON_URL}/CAMELYON16/images/{kind}_{number:03d}.tif", "checksum_note": CAMELYON_UNPINNED}
          for kind, numbers in C16_SLIDES.items() for number in numbers),
    ]},
    "options": {
        "max_slides": {"default": None,
                       "doc": "keep at most N slides of each official split (the 270 training and the 129 test "
                              "slides), chosen by a seeded (split_seed) shuffle within each class that deals the "
                              "classes out in proportion, so the kept slides have their split's tumour/normal mix to "
                              "within one slide; only those slides are downloaded. null keeps all"},
    },
    "labels": {"release": "camelyon16", "image_dir": "images", "reference": C16_REFERENCE, "task_label": "tumor"},
    # The official split; val is 20% of the training slides, drawn by split_seed and stratified by the label (the
    # same 216 / 54 proportion as eva's PatchCamelyon-derived validation slides). One slide per patient.
    "split": {"policy": "adapter", "val_fraction": 0.2},
    "tasks": {"tumor": {"type": "binary", "labels": ["tumor"]}},
    "preprocess": dict(CAMELYON_TILING),
    "size": "about 700 GB for the 399 slides; max_slides fetches a subset",
    "license": CAMELYON_LICENSE,
    "citation": "Ehteshami Bejnordi B, Veta M, Johannes van Diest P, et al. Diagnostic assessment of deep learning "
                "algorithms for detection of lymph node metastases in women with breast cancer. JAMA 318(22): "
                f"2199-2210, 2017. {CAMELYON_DATA_NOTE}",
    "homepage": "https://camelyon16.grand-challenge.org/",
    "access": "open",
    "notes": "Official split 270 / 129 (test_049, a duplicate, was removed by the organisers; test_114 is kept). "
             "Study A also reports 5-fold cross-validation on the training set; only the official split is "
             "implemented here.",
}

# ---- CAMELYON17 ------------------------------------------------------------------------------------------------

# The 100 training patients, 5 lymph-node slides each (patient_000_node_0 ... patient_099_node_4); the test
# patients' labels were never published. Patients are numbered centre by centre, 20 per centre (the release's
# training/center_<k>/ folders; stages.csv's center column).
C17_PATIENTS, C17_NODES, C17_PER_CENTRE = 100, 5, 20
C17_STAGES = "stages.csv"
C17_STAGE_VALUES = ("negative", "itc", "micro", "macro")
# Study A evaluates CAMELYON16-trained models on CAMELYON17 "Unseen" after removing ITC slides, following AttriMIL
# (Cai et al., Medical Image Analysis 2025); its lists (MedCAI/AttriMIL datasets/camelyon17_unseen.csv and
# camelyon17_seen.csv) are patients 000-069 (324 slides without ITC) and 070-099 (140 slides without ITC).
C17_SUBSETS = {"all": (0, 99), "unseen": (0, 69), "seen": (70, 99)}
C17_LAYOUT_NOTE = ("stages.csv: patient,stage,center; slide rows patient_XXX_node_Y.tif with stage negative, itc, "
                   "micro or macro, and patient rows patient_XXX.zip with the pN stage (not read)")

ENTRIES["camelyon17"] = {
    "title": "CAMELYON17 training set: 500 H&E lymph-node slides of 100 patients from 5 centres, slide metastasis",
    "modality": "pathology",
    "dimensionality": "wsi",
    "format": "tiff",
    "channels": 3,
    "adapter": "medprobe.datasets.adapters.camelyon",
    "source": {"kind": "http", "files": [
        {"name": C17_STAGES, "url": f"{CAMELYON_URL}/CAMELYON17/{C17_STAGES}", "index": True,
         "checksum_note": CAMELYON_UNPINNED},
        *({"name": f"images/patient_{patient:03d}_node_{node}.tif",
           "url": f"{CAMELYON_URL}/CAMELYON17/images/patient_{patient:03d}_node_{node}.tif",
           "checksum_note": CAMELYON_UNPINNED}
          for patient in range(C17_PATIENTS) for node in range(C17_NODES)),
    ]},
    "options": {
        "role": {"default": "own", "choices": ["own", "transfer"],
                 "doc": "own: a seeded patient-level 70/15/15 split of this set (stratified by centre and by whether "
                        "the patient has a positive node); transfer: every slide is test, for scoring models trained "
                        "on another dataset (CAMELYON16), as study A does"},
        "subset": {"default": "all", "choices": list(C17_SUBSETS),
                   "doc": "all 100 patients, or study A's 'unseen' (patients 000-069) / 'seen' (070-099) subsets"},
        "itc": {"default": "positive", "choices": ["positive", "exclude"],
                "doc": "slides whose only finding is isolated tumour cells: tumour = 1, or left out (study A)"},
        "max_patients": {"default": None,
                         "doc": "keep at most N patients (all 5 nodes each), chosen by a seeded (split_seed) shuffle "
                                "dealt out in proportion over centre x patient status; only their slides are "
                                "downloaded. null keeps all"},
    },
    "labels": {"release": "camelyon17", "image_dir": "images", "stages": C17_STAGES, "task_label": "tumor",
               "stage_values": list(C17_STAGE_VALUES), "patients_per_centre": C17_PER_CENTRE,
               "subsets": {name: list(bounds) for name, bounds in C17_SUBSETS.items()},
               "own_fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
    "split": {"policy": "adapter"},
    "tasks": {"tumor": {"type": "binary", "labels": ["tumor"]}},
    "preprocess": dict(CAMELYON_TILING),
    "size": "part of the 3 TB CAMELYON release (CAMELYON16's 399 slides alone are about 700 GB); max_patients "
            "fetches a subset",
    "license": CAMELYON_LICENSE,
    "citation": "Bandi P, Geessink O, Manson Q, et al. From detection of individual metastases to classification of "
                "lymph node status at the patient level: the CAMELYON17 challenge. IEEE Transactions on Medical "
                f"Imaging 38(2): 550-560, 2019. {CAMELYON_DATA_NOTE}",
    "homepage": "https://camelyon17.grand-challenge.org/",
    "access": "open",
    "notes": "Slide label tumour = stage other than negative. Items carry the patient's centre (0-4) and the "
             f"slide's stage. {C17_LAYOUT_NOTE}. Study A's transfer test = role: transfer, subset: unseen, "
             "itc: exclude, with CAMELYON16's tiling.",
}

# ---- BCNB ------------------------------------------------------------------------------------------------------

BCNB_TABLE = "patient-clinical-data.xlsx"
BCNB_LISTS = {"train": "dataset-splitting/train_id.txt", "val": "dataset-splitting/val_id.txt",
              "test": "dataset-splitting/test_id.txt"}
BCNB_LAYOUT = f"""\
<path>/                               the unpacked BCNB release
  {BCNB_TABLE}        one row per patient: Patient ID (1-1058), Age(years), Tumour Size(cm), Tumour
                                      Type, ER, PR, HER2, HER2 Expression, Histological grading, Surgical, Ki67,
                                      Molecular subtype, Number of lymph node metastases, ALN status
  WSIs/<Patient ID>.jpg               one core-needle biopsy slide per patient, a plain JPEG at 20x (WSIs/1.jpg ...)
  WSIs/<Patient ID>.json              the tumour-region annotations beside each slide (optional, not read)
  {BCNB_LISTS['train']}, val_id.txt, test_id.txt
                                      the publisher's 6:2:2 patient lists, one id per line (needed only with the
                                      option protocol: official)
Download: fill in the request form on https://bupt-ai-cz.github.io/BCNB/ (non-commercial licence); the reply links
the release on Google Drive, OneDrive, Baidu and Aliyun. Download the slides in several batches, as the publisher
advises, and unpack them so that the .jpg files lie directly in <path>/WSIs/."""
# task label -> (clinical column, values that mean 1, values that mean 0); a blank cell is a missing label.
BCNB_BINARY = {
    "ALN_metastasis": ("ALN status", ["N+(1-2)", "N+(>2)"], ["N0"]),
    "ER": ("ER", ["Positive"], ["Negative"]),
    "PR": ("PR", ["Positive"], ["Negative"]),
    "HER2": ("HER2", ["Positive"], ["Negative"]),
    "Ki67": ("Ki67", ["Positive"], ["Negative"]),
}
BCNB_FOLDS = 5

ENTRIES["bcnb"] = {
    "title": "BCNB: early breast cancer core-needle biopsy WSIs of 1,058 patients, ALN metastasis and receptor status",
    "modality": "pathology",
    "dimensionality": "wsi",
    # Plain JPEG, not a pyramid: OpenSlide does not open it. openslide.ImageSlide (PIL) can, decoding the whole image
    # on first read, or a one-time conversion to a tiled pyramidal TIFF (the publisher's own cvt_jpg2tiff.py does so).
    "format": "jpeg",
    "channels": 3,
    "adapter": "medprobe.datasets.adapters.bcnb",
    "source": {"kind": "local", "layout": BCNB_LAYOUT},
    "options": {
        "protocol": {"default": "cv", "choices": ["cv", "official"],
                     "doc": "cv: study A's 5-fold cross-validation at train:val:test 7:1:2; official: the "
                            "publisher's 6:2:2 lists in dataset-splitting/"},
        "fold": {"default": 0, "choices": list(range(BCNB_FOLDS)),
                 "doc": f"with protocol cv, the fold used as test set (0-{BCNB_FOLDS - 1}); patients are dealt into "
                        "5 seeded folds (split_seed) and val is 1/8 of the other four folds' patients, stratified"},
    },
    "labels": {"table": BCNB_TABLE, "id_column": "Patient ID", "slide_dir": "WSIs", "slide_suffix": ".jpg",
               "binary": {label: {"column": column, "positive": positive, "negative": negative}
                          for label, (column, positive, negative) in BCNB_BINARY.items()},
               "lists": BCNB_LISTS},
    "split": {"policy": "adapter", "n_folds": BCNB_FOLDS, "val_fraction": 0.125},
    # Study A's five slide tasks: ALN status N0 vs N+ (its primary task, listed first so it stratifies the split),
    # then ER, PR, HER2 and Ki67.
    "tasks": {
        "aln": {"type": "binary", "labels": ["ALN_metastasis"]},
        "er": {"type": "binary", "labels": ["ER"]},
        "pr": {"type": "binary", "labels": ["PR"]},
        "her2": {"type": "binary", "labels": ["HER2"]},
        "ki67": {"type": "binary", "labels": ["Ki67"]},
    },
    # The JPEGs carry no microns per pixel. The publisher states 20x (viewed at 200x; its TIFF conversion writes
    # AppMag = 20) and no calibration, so level 0 is taken as the nominal 20x 0.5 µm/px: with target_mpp 0.5 the
    # tiles are read at native resolution, as study A tiles BCNB. Set fallback_mpp to a calibrated value if known.
    "preprocess": {"target_mpp": 0.5, "tile_size": 224, "fallback_mpp": 0.5},
    "size": "1,058 JPEG slides (tens of GB) and a 76 KB clinical table",
    "license": "BCNB licence: non-commercial research and teaching only, cite the paper below, no redistribution of "
               "the data or modified versions (https://github.com/bupt-ai-cz/BALNMP#license)",
    "citation": "Xu F, Zhu C, Tang W, et al. Predicting axillary lymph node metastasis in early breast cancer using "
                "deep learning on primary tumor biopsy slides. Frontiers in Oncology 11: 759007, 2021",
    "homepage": "https://bupt-ai-cz.github.io/BCNB/",
    "access": "account",
    "notes": "One slide per patient. Labels: ALN status N0 = 0, N+(1-2) and N+(>2) = 1; ER, PR, HER2 and Ki67 "
             "Positive = 1, Negative = 0 (the clinical table's values, compared without case); any other value is "
             "an error naming it.",
}

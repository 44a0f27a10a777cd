"""Endoscopy datasets: Kvasir-Capsule."""

# Archive (and folder) name -> class, for the 11 classes that study A and the dataset's authors classify: those of
# the official two-fold split (the authors' baseline scripts in simula/kvasir-capsule have 11 outputs). Names as in
# the dataset README's label table.
KVASIR_CAPSULE_CLASSES = {
    "angiectasia": "Angiectasia",
    "blood_fresh": "Blood - fresh",
    "erosion": "Erosion",
    "erythema": "Erythema",
    "foreign_body": "Foreign body",
    "ileocecal_valve": "Ileocecal valve",
    "lymphangiectasia": "Lymphangiectasia",
    "normal_clean_mucosa": "Normal clean mucosa",
    "pylorus": "Pylorus",
    "reduced_mucosal_view": "Reduced mucosal view",
    "ulcer": "Ulcer",
}
# Not in the official split files (10, 12 and 55 images in the paper; note that Polyp has more than 50 but is
# dropped all the same): their images are counted and logged by the adapter, not used.
KVASIR_CAPSULE_DROPPED = {"ampulla_of_vater": "Ampulla of Vater", "blood_hematin": "Blood - hematin",
                          "polyp": "Polyp"}
# How official_splits/split_<k>.csv spells each class (the labels of the authors' baseline scripts).
KVASIR_CAPSULE_SPLIT_LABELS = {
    "Angiectasia": "Angiectasia", "Blood - fresh": "Blood", "Erosion": "Erosion", "Erythema": "Erythematous",
    "Foreign body": "Foreign Bodies", "Ileocecal valve": "Ileo-cecal valve", "Lymphangiectasia": "Lymphangiectasia",
    "Normal clean mucosa": "Normal", "Pylorus": "Pylorus", "Reduced mucosal view": "Reduced Mucosal View",
    "Ulcer": "Ulcer",
}
# The official splits, at the commit of simula/kvasir-capsule they were read from (columns filename,label).
KVASIR_CAPSULE_SPLITS = ("https://raw.githubusercontent.com/simula/kvasir-capsule/"
                         "1f70ad6eeeae03b53a5f88fe320584f6a99bd5ef/official_splits/")

ENTRIES = {
    "kvasir_capsule": {
        "title": "Kvasir-Capsule (Simula): 47,238 labelled video capsule endoscopy frames from 43 videos",
        "modality": "endoscopy",
        "dimensionality": "2d",
        "format": "jpeg",  # 336 x 336 RGB
        "channels": 3,
        "adapter": "medprobe.datasets.adapters.image_folder",
        # The labelled images as Simula's dataset page (simula/datasets.simula.no, datasets/kvasir-capsule.md)
        # links them: the OSF project's labelled_images folder in one zip, holding labelled_images/<class>.tar.gz
        # (members <Class name>/<video id>_<frame>.jpg) and metadata.csv. Neither Simula, OSF nor the GitHub
        # repository publishes checksums.
        "source": {"kind": "http", "files": [
            {"name": "kvasir-capsule-labeled-images.zip",
             "url": "https://datasets.simula.no/downloads/kvasir-capsule/kvasir-capsule-labeled-images.zip",
             "extract": True, "checksum_note": "Simula and OSF publish no checksum for the labelled images"},
            *({"name": name, "url": KVASIR_CAPSULE_SPLITS + name, "into": "official_splits",
               "checksum_note": "the official split files are published on GitHub without checksums"}
              for name in ("split_0.csv", "split_1.csv")),
        ]},
        "labels": {
            "prefix": "labelled_images",
            "container": ".tar.gz",
            "extensions": [".jpg"],
            "classes": KVASIR_CAPSULE_CLASSES,
            "excluded": KVASIR_CAPSULE_DROPPED,
            # A file name is <16 hex digit video id>_<frame number>; a video is one patient's examination.
            "patient_pattern": r"(?P<patient>[0-9a-f]{16})_[0-9]+",
            "split_files": {"trainval": "official_splits/split_0.csv", "test": "official_splits/split_1.csv"},
            "split_columns": {"file": "filename", "label": "label"},
            "split_labels": KVASIR_CAPSULE_SPLIT_LABELS,
        },
        # Official fold 0 is train + val (val: 10% of its videos, drawn by split_seed), fold 1 is test. The folds
        # keep each finding's frames together but not necessarily each video's: a video with frames in both folds
        # goes wholly to the fold that holds most of them (ties to test). The adapter logs how many frames moved
        # and keeps each frame's fold in the item table column official_split.
        "split": {"policy": "adapter", "val_fraction": 0.1},
        "tasks": {"finding": {"type": "multiclass", "labels": list(KVASIR_CAPSULE_CLASSES.values())}},
        "preprocess": {},  # the config's preprocess block applies unchanged (all frames are 336 x 336)
        "size": "3.9 GB (one zip) plus 2 MB of split files",
        "license": "Simula terms of use: open for research and education; competitions and commercial use need "
                   "prior written permission; cite the article below",
        "citation": "Smedsrud PH, Thambawita V, Hicks SA, et al. Kvasir-Capsule, a video capsule endoscopy dataset. "
                    "Scientific Data 8: 142, 2021. doi:10.1038/s41597-021-00920-z",
        "homepage": "https://osf.io/dv2ag/",
        "access": "open",
    },
}

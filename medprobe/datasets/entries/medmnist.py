"""MedMNIST+ (Zenodo): the 12 2-D and 6 3-D sets, each at every published size.

Generated from one table: each row holds what MedMNIST's own `medmnist/info.py` (v3.0.2, GitHub MedMNIST/MedMNIST
commit 3bb56be, identical in the PyPI wheel medmnist-3.0.2) says about a set: task type, classes in label-index
order, channels, split sizes, license and the MD5 of every size's .npz. Every URL in that file is
`https://zenodo.org/records/10519652/files/<name>?download=1` with <name> `<flag>.npz` for 28 px and
`<flag>_<size>.npz` otherwise, which is how the file entries below are built.

The option `size` picks one file; it defaults to 28 px, the classic MedMNIST benchmark and the smallest download.
2-D images are preprocessed at their published size ("native"); the extractor records any upsampling to the model
resolution, so comparing sizes is a matter of running the dataset once per `size`. 3-D volumes become stacks of
axial slices at 64 px, the larger published size, so neither size loses detail (28-px slices are upsampled).
"""

ZENODO = "https://zenodo.org/records/10519652/files"
SIZES_2D = (28, 64, 128, 224)
SIZES_3D = (28, 64)
SLICE_SIZE_3D = 64  # preprocess needs one int size for volumes, whatever the `size` option picks
DEFAULT_SIZE = 28
# MedMNIST task type -> medprobe task type. Ordinal regression (RetinaMNIST's DR grade) is scored as multiclass,
# as MedMNIST's own evaluator does.
TASK_TYPES = {"multi-class": "multiclass", "binary-class": "binary", "multi-label, binary-class": "multilabel",
              "ordinal-regression": "multiclass"}
ORGANS = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
          "lung-right", "pancreas", "spleen"]
ORGAN_SOURCE = "LiTS abdominal CT with organ bounding boxes"

# flag: (title, modality, task name, MedMNIST task type, channels, source dataset, license, (train, val, test),
#        classes in label-index order, MD5 per size in SIZES_2D or SIZES_3D order)
SETS = {
    "pathmnist": (
        "PathMNIST: colorectal cancer histology tissue types", "pathology", "tissue", "multi-class", 3,
        "NCT-CRC-HE-100K (train/val) and CRC-VAL-HE-7K (test)", "CC BY 4.0", (89996, 10004, 7180),
        ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
         "cancer-associated stroma", "colorectal adenocarcinoma epithelium"],
        ("a8b06965200029087d5bd730944a56c1", "55aa9c1e0525abe5a6b9d8343a507616",
         "ac42d08fb904d92c244187169d1fd1d9", "2c51a510bcdc9cf8ddb2af93af1eadec")),
    "chestmnist": (
        "ChestMNIST: chest X-ray findings (NIH ChestX-ray14)", "xray", "findings", "multi-label, binary-class", 1,
        "NIH ChestX-ray14, official split", "CC BY 4.0", (78468, 11219, 22433),
        ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
         "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"],
        ("02c8a6516a18b556561a56cbdd36c4a8", "9de6cd0b934ebb5b7426cfba5efbae16",
         "db107e5590b27930b62dbaf558aebee3", "45bd33e6f06c3e8cdb481c74a89152aa")),
    "dermamnist": (
        "DermaMNIST: dermatoscopic skin lesions (HAM10000)", "dermatoscopy", "lesion", "multi-class", 3,
        "HAM10000", "CC BY-NC 4.0", (7007, 1003, 2005),
        ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
         "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions"],
        ("0744692d530f8e62ec473284d019b0c7", "b70a2f5635c6199aeaa28c31d7202e1f",
         "2defd784463fa5243564e855ed717de1", "8974907d8e169bef5f5b96bc506ae45d")),
    "octmnist": (
        "OCTMNIST: retinal OCT diagnoses", "oct", "diagnosis", "multi-class", 1,
        "retinal OCT images of Kermany et al.", "CC BY 4.0", (97477, 10832, 1000),
        ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
        ("c68d92d5b585d8d81f7112f81e2d0842", "e229e9440236b774d9f0dfef9d07bdaf",
         "0a97e76651ace45c5d943ee3f65b63ae", "abc493b6d529d5de7569faaef2773ba3")),
    "pneumoniamnist": (
        "PneumoniaMNIST: paediatric chest X-ray pneumonia", "xray", "pneumonia", "binary-class", 1,
        "paediatric chest X-rays of Kermany et al.", "CC BY 4.0", (4708, 524, 624),
        ["normal", "pneumonia"],
        ("28209eda62fecd6e6a2d98b1501bb15f", "8f4eceb4ccffa70c672198ea285246c6",
         "05b46931834c231683c68f40c47b2971", "d6a3c71de1b945ea11211b03746c1fe1")),
    "retinamnist": (
        "RetinaMNIST: fundus diabetic retinopathy grade (DeepDRiD)", "fundus", "dr_grade", "ordinal-regression", 3,
        "DeepDRiD challenge", "CC BY 4.0", (1080, 120, 400),
        ["0", "1", "2", "3", "4"],
        ("bd4c0672f1bba3e3a89f0e4e876791e4", "afda852cc34dcda56f86ad2b2457dbcc",
         "e48e916a24454daf90583d4e6efb1a18", "eae7e3b6f3fcbda4ae613ebdcbe35348")),
    "breastmnist": (
        "BreastMNIST: breast ultrasound, malignant vs normal/benign", "ultrasound", "breast", "binary-class", 1,
        "breast ultrasound images of Al-Dhabyani et al.", "CC BY 4.0", (546, 78, 156),
        ["malignant", "normal, benign"],
        ("750601b1f35ba3300ea97c75c52ff8f6", "742edef2a1fd1524b2efff4bd7ba9364",
         "363e4b3f8d712e9b5de15470a2aaadf1", "b56378a6eefa9fed602bb16d192d4c8b")),
    "bloodmnist": (
        "BloodMNIST: blood cell microscopy", "microscopy", "cell_type", "multi-class", 3,
        "blood cell images of Acevedo et al.", "CC BY 4.0", (11959, 1712, 3421),
        ["basophil", "eosinophil", "erythroblast",
         "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
         "neutrophil", "platelet"],
        ("7053d0359d879ad8a5505303e11de1dc", "2b94928a2ae4916078ca51e05b6b800b",
         "adace1e0ed228fccda1f39692059dd4c", "b718ff6835fcbdb22ba9eacccd7b2601")),
    "tissuemnist": (
        "TissueMNIST: kidney cortex cell microscopy (BBBC051)", "microscopy", "cell_type", "multi-class", 1,
        "BBBC051 (Broad Bioimage Benchmark Collection)", "CC BY 4.0", (165466, 23640, 47280),
        ["Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
         "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
         "Thick Ascending Limb"],
        ("ebe78ee8b05294063de985d821c1c34b", "123ece2eba09d0aa5d698fda57103344",
         "61b955355d7425a89687b06cca3ce0c2", "b077128c4a949f0a4eb01517f9037b9c")),
    "organamnist": (
        "OrganAMNIST: abdominal CT organs, axial", "ct", "organ", "multi-class", 1,
        ORGAN_SOURCE, "CC BY 4.0", (34561, 6491, 17778), ORGANS,
        ("68e3f8846a6bd62f0c9bf841c0d9eacc", "2dcccc29b88e6da5a01161ef20cda288",
         "eeae80d0a227a8d099027e1b3cfd3b60", "50747347e05c87dd3aaf92c49f9f3170")),
    "organcmnist": (
        "OrganCMNIST: abdominal CT organs, coronal", "ct", "organ", "multi-class", 1,
        ORGAN_SOURCE, "CC BY 4.0", (12975, 2392, 8216), ORGANS,
        ("b9ceb9546e10131b32923c5bbeaea2b1", "3ce34a8724ea6f548e6db4744d03b6a9",
         "773c1f009daa3fe5d9a2a201b2a7ed94", "050f5e875dc056f6768abf94ec9995d1")),
    "organsmnist": (
        "OrganSMNIST: abdominal CT organs, sagittal", "ct", "organ", "multi-class", 1,
        ORGAN_SOURCE, "CC BY 4.0", (13932, 2452, 8827), ORGANS,
        ("9ab87b696fb54e2a387ebe992d6ed5f1", "53a6d115339d874c25e309a994ff46d3",
         "ded0c5fa01a95dc4978b956f613e9b8e", "b354719e553fbbb2513d5533f52a4cb1")),
    "organmnist3d": (
        "OrganMNIST3D: abdominal CT organ volumes", "ct", "organ", "multi-class", 1,
        ORGAN_SOURCE, "CC BY 4.0", (971, 161, 610),
        # not the 2-D sets' class order
        ["liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart", "lung-right",
         "lung-left", "spleen", "pancreas"],
        ("a0c5a1ff56af4f155c46d46fbb45a2fe", "58a2205adf14a9d0a189cb06dc78bf10")),
    "nodulemnist3d": (
        "NoduleMNIST3D: chest CT lung nodule malignancy (LIDC-IDRI)", "ct", "malignancy", "binary-class", 1,
        "LIDC-IDRI", "CC BY 4.0", (1158, 165, 310),
        ["benign", "malignant"],
        ("8755a7e9e05a4d9ce80a24c3e7a256f3", "c47c5b7d457bf6332200d2ea6d64ecd8")),
    "adrenalmnist3d": (
        "AdrenalMNIST3D: adrenal gland shapes from CT", "ct", "adrenal", "binary-class", 1,
        "adrenal gland shape masks, Zhongshan Hospital (new in MedMNIST v2)", "CC BY 4.0", (1188, 98, 298),
        ["normal", "hyperplasia"],
        ("bbd3c5a5576322bc4cdfea780653b1ce", "17721accfe9fb005146a47d33bc54b2f")),
    "fracturemnist3d": (
        "FractureMNIST3D: chest CT rib fracture types (RibFrac)", "ct", "fracture_type", "multi-class", 1,
        "RibFrac, official split", "CC BY 4.0", (1027, 103, 240),
        ["buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"],
        ("6aa7b0143a6b42da40027a9dda61302f", "f01d7e6316aedf4210da0da5b7437b42")),
    "vesselmnist3d": (
        "VesselMNIST3D: brain vessel segments from MRA, aneurysm vs vessel (IntrA)", "mra", "aneurysm",
        "binary-class", 1, "IntrA (voxelised vessel meshes)", "CC BY 4.0", (1335, 191, 382),
        ["vessel", "aneurysm"],
        ("b41fd4f7e7e2feedddb201585ecafa1b", "6bb274a8846e1097066dcd64e2c4520f")),
    "synapsemnist3d": (
        "SynapseMNIST3D: electron microscopy synapse types", "em", "synapse_type", "binary-class", 1,
        "rat cortex multi-beam SEM volume (MitoEM; new in MedMNIST v2)", "CC BY 4.0", (1230, 177, 352),
        ["inhibitory synapse", "excitatory synapse"],
        ("1235b78a3cd6280881dd7850a78eadb6", "43bd14ebf3af9d3dd072446fedc14d5e")),
}

CITATION = ("Yang J, Shi R, Wei D, et al. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D "
            "biomedical image classification. Scientific Data 10, 41 (2023), doi:10.1038/s41597-022-01721-8")
NOTES = ("The .npz holds MedMNIST's official train/val/test split. MedMNIST publishes no patient ids, so "
         "patient_id = item_id: medprobe cannot check the split for patient leakage, and bootstrap CIs resample "
         "images, not patients.")
EXTRA_NOTES = {
    "retinamnist": "The task is ordinal regression (DR grade 0-4); it is scored as 5-class multiclass, as "
                   "MedMNIST's own evaluator does.",
    "breastmnist": "As in MedMNIST, label 1 (the binary task's positive class) is 'normal, benign' and label 0 "
                   "is 'malignant'.",
}


def npz_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _human(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


def _entry(flag: str, row: tuple) -> dict:
    title, modality, task, kind, channels, source, license_, counts, classes, md5s = row
    is_3d = flag.endswith("3d")
    sizes = SIZES_3D if is_3d else SIZES_2D
    assert len(md5s) == len(sizes), flag
    task_type = TASK_TYPES[kind]
    pixels = {size: sum(counts) * channels * size ** (3 if is_3d else 2) for size in sizes}
    notes = [NOTES, EXTRA_NOTES.get(flag, "")]
    if is_3d:
        notes.append(
            "MedMNIST publishes no voxel geometry: each (S, S, S) volume is taken as 1 mm isotropic with its first "
            "axis axial (as MedMNIST's maintainers describe it), so the axial slices are MedMNIST's own frames. "
            "MedMNIST already mapped the intensities onto 0-255 (CT is no longer in Hounsfield units), so they are "
            "used as stored (value / 255), with no CT window or percentile stretch. Slices are preprocessed at "
            f"{SLICE_SIZE_3D} px: at size 28 they are upsampled (bilinear).")
    return {
        "title": title,
        "modality": modality,
        "dimensionality": "3d" if is_3d else "2d",
        "format": "npz",
        "channels": channels,
        "adapter": "medprobe.datasets.adapters.medmnist",
        "source": {"kind": "http", "files": [
            {"name": npz_name(flag, size), "url": f"{ZENODO}/{npz_name(flag, size)}?download=1", "md5": md5,
             "when": {"size": size}}
            for size, md5 in zip(sizes, md5s)]},
        "options": {"size": {
            "default": DEFAULT_SIZE, "choices": list(sizes),
            "doc": f"published side in px, one of {list(sizes)}. Default 28, the classic MedMNIST benchmark and the "
                   "smallest download; the larger MedMNIST+ sizes are what a foundation-model comparison at the "
                   "backbone's own resolution wants" + (
                       f". The volumes' axial slices are preprocessed at {SLICE_SIZE_3D} px." if is_3d else
                       " (224 avoids any upsampling). The images are used at this size; the extractor records any "
                       "upsampling to the model resolution.")}},
        "labels": {"task": task, "medmnist_task": kind, "classes": classes,
                   "images_key": "{split}_images", "labels_key": "{split}_labels"},
        "split": {"policy": "adapter"},
        "tasks": {task: {"type": task_type, "labels": classes[1:] if task_type == "binary" else classes}},
        "preprocess": {"size": SLICE_SIZE_3D, "slice_axis": "axial"} if is_3d else {"size": "native"},
        **({"intensity": "normalised"} if is_3d else {}),
        # Uncompressed pixel bytes at the smallest and largest size; the deflated .npz downloads are smaller.
        "size": f"{_human(min(pixels.values()))}-{_human(max(pixels.values()))} of pixels",
        "license": license_,
        "citation": f"{CITATION}; and the source dataset: {source}",
        "homepage": "https://medmnist.com/",
        "access": "open",
        "notes": " ".join(n for n in notes if n),
    }


ENTRIES: dict[str, dict] = {flag: _entry(flag, row) for flag, row in SETS.items()}

"""Small fake datasets in the real datasets' exact on-disk layouts, for adapter and download tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medprobe.datasets.entries.medmnist import npz_name
from medprobe.datasets.registry import get_dataset
from medprobe.hashing import sha256_file


def make_medmnist(folder: Path, flag: str = "pathmnist", size: int = 28, counts: tuple[int, int, int] = (12, 5, 6),
                  seed: int = 0, compressed: bool = True) -> dict:
    """`<flag>.npz` (28 px) or `<flag>_<size>.npz` as Zenodo record 10519652 delivers it: np.savez_compressed of
    uint8 `<split>_images` (N, S, S), (N, S, S, 3) for RGB sets or (N, S, S, S) for 3-D sets, and uint8
    `<split>_labels` (N, 1) class indices or (N, L) 0/1 flags for ChestMNIST. `compressed=False` writes stored
    (np.savez) members instead. Every class occurs in a split when the split has enough images.
    """
    entry = get_dataset(flag)
    task = entry["tasks"][entry["labels"]["task"]]
    n_classes = len(entry["labels"]["classes"])
    is_3d = entry["dimensionality"] == "3d"
    shape = (size,) * (3 if is_3d else 2) + ((3,) if entry["channels"] == 3 else ())
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        if task["type"] == "multilabel":
            labels = rng.integers(0, 2, size=(n, n_classes), dtype=np.uint8)
        else:
            labels = rng.permutation(np.arange(n) % n_classes).astype(np.uint8)[:, None]
        arrays[f"{split}_labels"] = labels
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / npz_name(flag, size)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return {"path": path, "name": path.name, "arrays": arrays, "sha256": sha256_file(path),
            "md5": hashlib.md5(path.read_bytes()).hexdigest()}


# ---- Figshare brain tumour, CheXpert, RSNA Pneumonia ------------------------------------------------------------

FIGSHARE_ZIPS = {"brainTumorDataPublic_1-766.zip": 1, "brainTumorDataPublic_767-1532.zip": 767,
                 "brainTumorDataPublic_1533-2298.zip": 1533, "brainTumorDataPublic_2299-3064.zip": 2299}


def write_matlab_v73(path: Path, struct: str, fields: dict) -> None:
    """A MATLAB v7.3 .mat file as MATLAB writes it: HDF5 behind a 512-byte userblock holding the MAT header text,
    version 0x0200 and the 'IM' endian mark; one group per struct, every field a dataset whose MATLAB_class
    attribute names its MATLAB type. Arrays are stored transposed (MATLAB is column-major): a MATLAB r x c array
    becomes an HDF5 (c, r) dataset, char arrays become uint16 character codes. `fields` maps a name to a
    (MATLAB class, array in MATLAB orientation) pair.
    """
    import h5py

    dtypes = {"double": np.float64, "int16": np.int16, "char": np.uint16, "logical": np.uint8}
    with h5py.File(path, "w", userblock_size=512) as file:
        group = file.create_group(struct)
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for name, (matlab_class, value) in fields.items():
            if matlab_class == "char":
                value = np.array([[ord(c) for c in value]])
            data = np.atleast_2d(np.asarray(value)).astype(dtypes[matlab_class]).T
            dataset = group.create_dataset(name, data=data, track_times=False)
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
            if matlab_class in ("char", "logical"):
                dataset.attrs["MATLAB_int_decode"] = np.int32(2 if matlab_class == "char" else 1)
    text = b"MATLAB 7.3 MAT-file, Platform: PCWIN64, Created on: Fri Apr 03 10:00:00 2015 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as out:
        out.write(header.ljust(512, b"\x00"))


def make_figshare_brain_tumor(folder: Path, patients_per_class: int = 7, slices_per_patient: int = 2,
                              size: int = 24, seed: int = 0) -> dict:
    """The four zips of figshare article 1512427, each holding `<n>.mat` slices at its top level, numbered from
    the start of its range (1, 767, 1533, 2299). Each slice is a v7.3 struct `cjdata` with label (double,
    1 meningioma, 2 glioma, 3 pituitary), PID (char), image (int16), tumorBorder (double row of x, y pairs) and
    tumorMask (logical); every patient has one tumour type. Images are `size` square except one at half size, and
    carry a left-to-right ramp, so a reader that forgets MATLAB's transposition gets them visibly wrong.
    Returns the archives (path, sha256, md5) and one row per slice with its image in MATLAB orientation.
    """
    import tempfile
    import zipfile

    import pandas as pd

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    slices = []
    for label in (1, 2, 3):
        for p in range(patients_per_class):
            patient = f"{100000 + 1000 * label + 37 * p}"
            for _ in range(slices_per_patient):
                side = size // 2 if not slices else size
                ramp = np.linspace(0, 600, side)[None, :]
                image = (ramp + rng.integers(0, 200, size=(side, side))).astype(np.int16)
                slices.append({"patient_id": patient, "label": label, "image": image})
    counters = dict.fromkeys(FIGSHARE_ZIPS, 0)
    names = list(FIGSHARE_ZIPS)
    members: dict[str, list] = {name: [] for name in names}
    for index, row in enumerate(slices):
        archive = names[index % len(names)]
        row["item_id"] = str(FIGSHARE_ZIPS[archive] + counters[archive])
        row["archive"] = archive
        counters[archive] += 1
        members[archive].append(row)
    archives = {}
    with tempfile.TemporaryDirectory() as staging:
        for archive, rows in members.items():
            path = folder / archive
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                for row in rows:
                    image = row["image"]
                    mask = np.zeros(image.shape, dtype=np.uint8)
                    mask[2:6, 3:8] = 1
                    mat = Path(staging) / f"{row['item_id']}.mat"
                    write_matlab_v73(mat, "cjdata", {
                        "label": ("double", row["label"]), "PID": ("char", row["patient_id"]),
                        "image": ("int16", image), "tumorBorder": ("double", [[3.0, 2.0, 7.0, 2.0, 7.0, 5.0]]),
                        "tumorMask": ("logical", mask)})
                    zf.writestr(zipfile.ZipInfo(mat.name, date_time=(2015, 4, 3, 0, 0, 0)), mat.read_bytes(),
                                compress_type=zipfile.ZIP_DEFLATED)
            archives[archive] = {"path": path, "sha256": sha256_file(path),
                                 "md5": hashlib.md5(path.read_bytes()).hexdigest()}
    return {"archives": archives, "slices": pd.DataFrame(slices)}


CHEXPERT_OBSERVATIONS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                         "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                         "Pleural Other", "Fracture", "Support Devices"]
# Competition observations (Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion) per patient group:
# every patient of a group shares them, so each group is one split stratum under every uncertainty policy.
CHEXPERT_PATTERNS = [
    {"Atelectasis": "1.0", "Cardiomegaly": "0.0", "Consolidation": "", "Edema": "-1.0", "Pleural Effusion": "0.0"},
    {"Atelectasis": "-1.0", "Cardiomegaly": "1.0", "Consolidation": "0.0", "Edema": "", "Pleural Effusion": "-1.0"},
    {"Atelectasis": "", "Cardiomegaly": "", "Consolidation": "-1.0", "Edema": "1.0", "Pleural Effusion": "1.0"},
]


def make_chexpert(folder: Path, train_patients: int = 24, valid_patients: int = 6,
                  prefix: str = "CheXpert-v1.0-small", seed: int = 0) -> dict:
    """CheXpert-v1.0-small as unzipped: `folder` holds train.csv, valid.csv, train/ and valid/ with
    patientNNNNN/studyN/viewN_frontal.jpg (8-bit grayscale JPEG) and some viewN_lateral.jpg. CSV columns Path
    (with the `prefix` folder name in front), Sex, Age, Frontal/Lateral, AP/PA and the 14 observations as
    "1.0", "0.0", "-1.0" or blank; valid.csv, like the real one, has only 1.0 and 0.0 and patients from
    patient64541 on. Returns one row per image: item_id, patient_id, source_file, split (trainval/test), view,
    and the raw CSV strings of the observations.
    """
    import pandas as pd
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    rows = []

    def add(split_folder: str, number: int, study: int, view: int, frontal: bool, values: dict) -> None:
        patient = f"patient{number:05d}"
        name = f"view{view}_{'frontal' if frontal else 'lateral'}.jpg"
        source_file = f"{split_folder}/{patient}/study{study}/{name}"
        pixels = rng.integers(0, 256, size=(24, 20), dtype=np.uint8)
        (folder / source_file).parent.mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(pixels, mode="L").save(folder / source_file, quality=95)
        rows.append({"item_id": f"{patient}_study{study}_{Path(name).stem}", "patient_id": patient,
                     "source_file": source_file, "split": "trainval" if split_folder == "train" else "test",
                     "view": "Frontal" if frontal else "Lateral", "Sex": ["Female", "Male"][number % 2],
                     "Age": str(40 + number % 40), "AP/PA": ("AP" if number % 3 else "PA") if frontal else "",
                     **values})

    for p in range(train_patients):
        pattern = CHEXPERT_PATTERNS[p % len(CHEXPERT_PATTERNS)]
        others = {obs: str(rng.choice(["", "0.0", "1.0", "-1.0"])) for obs in CHEXPERT_OBSERVATIONS}
        values = {**others, **pattern}
        add("train", p + 1, 1, 1, True, values)
        if p % 4 == 0:
            add("train", p + 1, 1, 2, False, values)
        if p % 5 == 0:
            add("train", p + 1, 2, 1, True, values)
    for p in range(valid_patients):
        values = {obs: str(rng.choice(["0.0", "1.0"])) for obs in CHEXPERT_OBSERVATIONS}
        add("valid", 64541 + p, 1, 1, True, values)
        if p == 0:
            add("valid", 64541 + p, 1, 2, False, values)
    table = pd.DataFrame(rows)
    for split_folder, split in (("train", "trainval"), ("valid", "test")):
        part = table[table["split"] == split]
        csv = pd.DataFrame({"Path": prefix + "/" + part["source_file"], "Sex": part["Sex"], "Age": part["Age"],
                            "Frontal/Lateral": part["view"], "AP/PA": part["AP/PA"],
                            **{obs: part[obs] for obs in CHEXPERT_OBSERVATIONS}})
        csv.to_csv(folder / f"{split_folder}.csv", index=False)
    return {"root": folder, "rows": table}


def make_rsna(folder: Path, negatives: int = 12, positives: int = 12, test_images: int = 2, size: int = 32,
              seed: int = 0) -> dict:
    """The unzipped Kaggle RSNA Pneumonia download (stage 2): stage_2_train_labels.csv (patientId, x, y, width,
    height, Target; one row per box for positives, one blank-box Target 0 row otherwise),
    stage_2_detailed_class_info.csv, stage_2_sample_submission.csv, and stage_2_train_images/ and
    stage_2_test_images/ of <patientId>.dcm: 8-bit MONOCHROME2 secondary captures, JPEG Baseline encoded, without
    VOI tags, as the real files are. Returns the per-image Target and the stored pixels.
    """
    import io
    import uuid
    import warnings

    import pandas as pd
    import pydicom
    from PIL import Image as PILImage
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    for sub in ("stage_2_train_images", "stage_2_test_images"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    def write_dicom(path: Path, patient: str) -> np.ndarray:
        pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=95)
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[patient])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
        ds.Modality, ds.ConversionType = "CR", "WSD"
        ds.SeriesDescription = "view: PA"
        ds.PatientName = ds.PatientID = patient
        ds.PatientSex = "F"
        with warnings.catch_warnings():  # the real files hold ages like '51', which is not a valid AS value
            warnings.simplefilter("ignore")
            ds.PatientAge = "51"
        ds.BodyPartExamined, ds.ViewPosition = "CHEST", "PA"
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient, "study"])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient, "series"])
        ds.SeriesNumber, ds.InstanceNumber = 1, 1
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelSpacing = [0.143, 0.143]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
        return pixels

    def new_id() -> str:
        return str(uuid.UUID(bytes=rng.bytes(16), version=4))

    labels, classes, targets, pixels = [], [], {}, {}
    for index, positive in enumerate(rng.permutation([False] * negatives + [True] * positives)):
        patient = new_id()
        pixels[patient] = write_dicom(folder / "stage_2_train_images" / f"{patient}.dcm", patient)
        targets[patient] = int(positive)
        if positive:
            for _ in range(1 + index % 2):  # one or two boxes, one row each
                box = rng.integers(50, 400, size=4).astype(float)
                labels.append([patient, *(f"{v:.1f}" for v in box), "1"])
                classes.append([patient, "Lung Opacity"])
        else:
            labels.append([patient, "", "", "", "", "0"])
            classes.append([patient, ["Normal", "No Lung Opacity / Not Normal"][index % 2]])
    test_ids = [new_id() for _ in range(test_images)]
    for patient in test_ids:
        write_dicom(folder / "stage_2_test_images" / f"{patient}.dcm", patient)
    pd.DataFrame(labels, columns=["patientId", "x", "y", "width", "height", "Target"]).to_csv(
        folder / "stage_2_train_labels.csv", index=False)
    pd.DataFrame(classes, columns=["patientId", "class"]).to_csv(folder / "stage_2_detailed_class_info.csv",
                                                                 index=False)
    pd.DataFrame({"patientId": test_ids, "PredictionString": "0.5 0 0 100 100"}).to_csv(
        folder / "stage_2_sample_submission.csv", index=False)
    return {"root": folder, "targets": targets, "pixels": pixels, "test_ids": test_ids}


# ---- NIH ChestX-ray14, Montgomery County, Kvasir-Capsule ---------------------------------------------------------

NIH_HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Sex",
              "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
# Finding patterns per patient group; a patient's first image has the whole pattern, so every patient of a group
# has the same label vector and each group is one split stratum (with enough patients to give val some).
NIH_PATTERNS = [[], ["Effusion"], ["Atelectasis", "Infiltration"], ["Cardiomegaly", "Effusion", "Pleural_Thickening"]]


def _file_record(path: Path) -> dict:
    return {"path": path, "sha256": sha256_file(path), "md5": hashlib.md5(path.read_bytes()).hexdigest()}


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tar_gz(path: Path, members: dict[str, bytes], folders: tuple[str, ...] = ()) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_500_000_000
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_500_000_000
            tar.addfile(info, io.BytesIO(data))


def make_nih(folder: Path, patients_per_group: int = 8, test_per_group: int = 2, size: int = 16,
             seed: int = 0) -> dict:
    """What NIH's Box release delivers: images_001.tar.gz ... images_012.tar.gz (members images/<8-digit
    patient>_<3-digit follow-up>.png, 8-bit grey, one RGBA with equal channels as a few real ones are, split in
    name order), Data_Entry_2017_v2020.csv (the real 11 columns: the header's "OriginalImage[Width,Height]" and
    "OriginalImagePixelSpacing[x,y]" each hold a comma) and the patient-wise train_val_list.txt / test_list.txt,
    one file name per line. Returns every file by name (path, sha256, md5), the label table and both lists.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows, test = [], []
    patient = 0
    for pattern in NIH_PATTERNS:
        for member in range(patients_per_group):
            patient += 1
            for follow_up in range(int(rng.integers(1, 4))):
                findings = pattern if follow_up == 0 else [f for f in pattern if rng.random() < 0.5]
                name = f"{patient:08d}_{follow_up:03d}.png"
                rows.append([name, "|".join(findings) or "No Finding", str(follow_up), str(patient),
                             str(int(rng.integers(20, 90))), "MF"[patient % 2], "PA" if follow_up % 2 == 0 else "AP",
                             "2500", "2048", "0.168", "0.168"])
                if member < test_per_group:
                    test.append(name)
    table = pd.DataFrame(rows, columns=NIH_HEADER)
    files = {}
    names = table["Image Index"].tolist()
    for number, chunk in enumerate(np.array_split(np.array(names), 12), start=1):
        members = {}
        for name in chunk:
            pixels = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
            if name == names[1]:  # an RGBA file, as a few real ones are
                members[f"images/{name}"] = _png_bytes(np.dstack([pixels] * 3 + [np.full_like(pixels, 255)]))
            else:
                members[f"images/{name}"] = _png_bytes(pixels)
        path = folder / f"images_{number:03d}.tar.gz"
        _tar_gz(path, members, folders=("images",))
        files[path.name] = _file_record(path)
    csv = folder / "Data_Entry_2017_v2020.csv"
    csv.write_text(",".join(["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
                             "Patient Sex", "View Position", "OriginalImage[Width,Height]",
                             "OriginalImagePixelSpacing[x,y]"]) + "\n"
                   + "".join(",".join(row) + "\n" for row in rows))
    trainval = [name for name in names if name not in set(test)]
    for list_name, listed in (("train_val_list.txt", trainval), ("test_list.txt", test)):
        (folder / list_name).write_text("".join(f"{name}\n" for name in listed))
    for name in ("Data_Entry_2017_v2020.csv", "train_val_list.txt", "test_list.txt"):
        files[name] = _file_record(folder / name)
    return {"files": files, "table": table, "trainval": trainval, "test": test}


def make_montgomery(folder: Path, normal: int = 8, tb: int = 6, seed: int = 0) -> dict:
    """NLM-MontgomeryCXRSet.zip as Open-i delivers it: MontgomerySet/CXR_png/MCUCXR_<nnnn>_<0|1>.png (12-bit grey
    values in 16-bit PNGs, portrait or landscape), ManualMask/leftMask and rightMask/<same name> (8-bit 0/255),
    ClinicalReadings/<stem>.txt, the readme PDF, the Thumbs.db / .DS_Store strays of the real zip and a __MACOSX
    companion. Returns the zip by name (path, sha256, md5), each stem's TB label and its (rows, cols).
    """
    import zipfile

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    numbers = sorted(rng.choice(np.arange(1, 400), size=normal + tb, replace=False))
    labels = dict(zip((f"MCUCXR_{n:04d}_{d}" for n, d in zip(numbers, [0] * normal + [1] * tb)),
                      [0] * normal + [1] * tb))
    path = folder / "NLM-MontgomeryCXRSet.zip"
    shapes = {}
    base = "MontgomerySet"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for directory in ("", "CXR_png/", "ManualMask/", "ManualMask/leftMask/", "ManualMask/rightMask/",
                          "ClinicalReadings/"):
            zf.writestr(f"{base}/{directory}", b"")
        for index, (stem, label) in enumerate(labels.items()):
            rows, cols = (30, 24) if index % 3 else (24, 30)
            shapes[stem] = (rows, cols)
            image = (np.linspace(200, 3800, cols)[None, :] + rng.integers(0, 200, size=(rows, cols))).astype(np.uint16)
            zf.writestr(f"{base}/CXR_png/{stem}.png", _png_bytes(image))
            left, right = np.zeros((rows, cols), np.uint8), np.zeros((rows, cols), np.uint8)
            left[4:rows - 4, cols // 2 + 2:cols - 3] = 255  # the patient's left lung is on the viewer's right
            right[4:rows - 4, 3:cols // 2 - 2] = 255
            zf.writestr(f"{base}/ManualMask/leftMask/{stem}.png", _png_bytes(left))
            zf.writestr(f"{base}/ManualMask/rightMask/{stem}.png", _png_bytes(right))
            zf.writestr(f"{base}/ClinicalReadings/{stem}.txt",
                        f"Patient's Sex: {'FM'[index % 2]}\nPatient's Age: 0{30 + index}Y\n"
                        f"{'right upper lobe infiltrate' if label else 'normal'}\n")
        zf.writestr(f"{base}/CXR_png/Thumbs.db", b"\xd0\xcf\x11\xe0 thumbnail cache")
        zf.writestr(f"{base}/ManualMask/leftMask/Thumbs.db", b"\xd0\xcf\x11\xe0 thumbnail cache")
        zf.writestr(f"{base}/ManualMask/.DS_Store", b"\x00\x00\x00\x01Bud1")
        zf.writestr(f"{base}/NLM-MontgomeryCXRSet-ReadMe.pdf", b"%PDF-1.4\n%%EOF\n")
        zf.writestr(f"__MACOSX/{base}/._NLM-MontgomeryCXRSet-ReadMe.pdf", b"\x00\x05\x16\x07")
    return {"files": {path.name: _file_record(path)}, "labels": labels, "shapes": shapes}


def make_kvasir_capsule(folder: Path, videos: int = 8, test_videos: int = 2, frames_per_class: int = 2,
                        size: int = 16, seed: int = 0) -> dict:
    """Simula's kvasir-capsule-labeled-images.zip (labelled_images/<class>.tar.gz for all 14 classes, members
    <Class name>/<16 hex video id>_<frame>.jpg, 8-bit RGB JPEG, plus labelled_images/metadata.csv) and the official
    official_splits split_0.csv / split_1.csv (filename,label, the authors' label spellings, the 11 used classes).
    Every video has every used class, so all videos are one split stratum. Also planted: images of the 3 dropped
    classes; one file in two used classes (listed twice in the split files, as 8 real ones are) and one in a used
    and a dropped class; one frame of a fold-0 video listed in fold 1 (the adapter moves it back to its video's
    majority fold). Returns the files by name (path, sha256, md5) and one row per image file.
    """
    import io
    import zipfile

    import pandas as pd
    from PIL import Image

    from medprobe.datasets.entries.endoscopy import (
        KVASIR_CAPSULE_CLASSES, KVASIR_CAPSULE_DROPPED, KVASIR_CAPSULE_SPLIT_LABELS)

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video_ids = [f"{int(v):016x}" for v in rng.integers(1 << 60, 1 << 62, size=videos)]
    frames = dict.fromkeys(video_ids, 100)
    rows = []

    def add(video: int, archive: str, fold: int | None, name: str | None = None) -> str:
        vid = video_ids[video]
        if name is None:
            frames[vid] += int(rng.integers(1, 40))
            name = f"{vid}_{frames[vid]}.jpg"
        rows.append({"name": name, "video": vid, "archive": archive, "fold": fold})
        return name

    for video in range(videos):
        fold = 0 if video < videos - test_videos else 1
        for archive in KVASIR_CAPSULE_CLASSES:
            for _ in range(frames_per_class):
                add(video, archive, fold)
    moved = add(videos - test_videos - 1, "normal_clean_mucosa", 1)
    for video, (archive, n) in enumerate(zip(KVASIR_CAPSULE_DROPPED, (2, 2, 3))):
        for _ in range(n):
            add(video, archive, None)
    two_used = add(3, "erosion", 0)
    add(3, "angiectasia", 0, two_used)
    used_and_dropped = add(4, "pylorus", 0)
    add(4, "ampulla_of_vater", None, used_and_dropped)
    images = pd.DataFrame(rows)
    names = {**KVASIR_CAPSULE_CLASSES, **KVASIR_CAPSULE_DROPPED}
    zip_path = folder / "kvasir-capsule-labeled-images.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("labelled_images/", b"")
        for index, (archive, group) in enumerate(images.groupby("archive", sort=False)):
            members = {}
            for name in group["name"]:
                pixels = np.clip(rng.normal(40 + 12 * index, 20, size=(size, size, 3)), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
                members[f"{names[archive]}/{name}"] = buffer.getvalue()
            staged = folder / f"{archive}.tar.gz"
            _tar_gz(staged, members, folders=(names[archive],))
            zf.write(staged, f"labelled_images/{archive}.tar.gz")
            staged.unlink()
        metadata = ["filename;video_id;frame_number;finding_category;finding_class;x1;y1;x2;y2;x3;y3;x4;y4"]
        metadata += [f"{row.name};{row.video};{row.name[17:-4]};"
                     f"{'Anatomy' if row.archive in ('pylorus', 'ileocecal_valve', 'ampulla_of_vater') else 'Luminal'};"
                     f"{names[row.archive]};;;;;;;" for row in images.itertuples()]
        zf.writestr("labelled_images/metadata.csv", "\n".join(metadata) + "\n")
    files = {zip_path.name: _file_record(zip_path)}
    listed = images[images["fold"].notna()]
    for fold in (0, 1):
        part = listed[listed["fold"] == fold]
        path = folder / f"split_{fold}.csv"
        labels = part["archive"].map(KVASIR_CAPSULE_CLASSES).map(KVASIR_CAPSULE_SPLIT_LABELS)
        path.write_text("filename,label\n" + "".join(f"{n},{lab}\n" for n, lab in zip(part["name"], labels)))
        files[path.name] = _file_record(path)
    return {"files": files, "images": images, "moved": moved, "multi": [two_used, used_and_dropped]}

# ---- end NIH ChestX-ray14, Montgomery County, Kvasir-Capsule ----------------------------------------------------


# ---- Medical Segmentation Decathlon, AMOS22 ---------------------------------------------------------------------

# Case file names per MSD task folder, as in the real dataset.json files (spleen_19, BRATS_001, la_003, ...).
MSD_CASE_NAMES = {"Task01_BrainTumour": "BRATS_{:03d}", "Task02_Heart": "la_{:03d}", "Task03_Liver": "liver_{}",
                  "Task04_Hippocampus": "hippocampus_{:03d}", "Task05_Prostate": "prostate_{:02d}",
                  "Task06_Lung": "lung_{:03d}", "Task07_Pancreas": "pancreas_{:03d}",
                  "Task08_HepaticVessel": "hepaticvessel_{:03d}", "Task09_Spleen": "spleen_{}",
                  "Task10_Colon": "colon_{:03d}"}
# Voxel -> scanner mm with x and y running left and posterior, as many MSD and AMOS headers do: the canonical (RAS+)
# array is the stored one flipped along its first two axes.
DECATHLON_AFFINE = np.array([[-0.8, 0, 0, 6.0], [0, -0.8, 0, 6.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # the 187-331 byte `._*` companions of macOS tar


def _nifti_gz(array: np.ndarray, affine: np.ndarray = DECATHLON_AFFINE) -> bytes:
    import gzip

    import nibabel as nib

    return gzip.compress(nib.Nifti1Image(array, affine).to_bytes(), mtime=0)


def _case_volumes(rng: np.random.Generator, shape: tuple[int, int, int], n_classes: int, modality: str,
                  n_channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An image (int16 HU for CT; float32 MR, (X, Y, Z, C) when multi-channel, channel c offset by 1000 * c) and
    its uint8 label map: one 3x3x3 box per class in its own randomly chosen 4x4 in-plane cell, so boxes never
    overlap and every class occurs in every case."""
    labels = np.zeros(shape, np.uint8)
    cells = rng.permutation((shape[0] // 4) * (shape[1] // 4))[:n_classes]
    for value, cell in enumerate(cells, start=1):
        x, y = 4 * (cell // (shape[1] // 4)), 4 * (cell % (shape[1] // 4))
        z = rng.integers(0, shape[2] - 2)
        labels[x:x + 3, y:y + 3, z:z + 3] = value
    if modality == "ct":
        image = np.full(shape, -1000, np.int16)
        image[2:-2, 2:-2, :] = 40 + rng.integers(-10, 10, size=(shape[0] - 4, shape[1] - 4, shape[2]))
        image[labels > 0] = (60 + 40 * labels[labels > 0]).astype(np.int16)
        return image, labels
    base = rng.normal(200, 20, size=shape) + 150.0 * labels
    image = np.stack([base + 1000.0 * c for c in range(n_channels)], axis=-1) if n_channels > 1 else base
    return image.astype(np.float32), labels


def make_decathlon(folder: Path, dataset: str = "msd_spleen", n_train: int = 10, n_test: int = 2,
                   shape: tuple[int, int, int] = (16, 16, 8), seed: int = 0) -> dict:
    """Task<nn>_<Name>.tar as the MSD mirror delivers it (an uncompressed tar): Task<nn>_<Name>/dataset.json
    (name, description, reference, licence, release, tensorImageSize, modality, labels, numTraining, numTest, a
    "training" list of {"image": "./imagesTr/<case>.nii.gz", "label": "./labelsTr/<case>.nii.gz"} in no particular
    order and a "test" list of "./imagesTs/<case>.nii.gz"), imagesTr/, labelsTr/, imagesTs/, plus the macOS
    AppleDouble companions of the real tars (`._Task09_Spleen`, `Task09_Spleen/._imagesTr`,
    `imagesTr/._<case>.nii.gz`). The registry entry supplies the class and channel names; multi-channel tasks get
    (X, Y, Z, C) images. Returns the tar by name (path, sha256, md5), the training cases in dataset.json order and
    each case's stored image and label arrays.
    """
    import io
    import json
    import tarfile

    entry = get_dataset(dataset)
    spec = entry["labels"]
    task = spec["folder"]
    rng = np.random.default_rng(seed)
    numbers = rng.choice(np.arange(1, 300), size=n_train + n_test, replace=False)
    cases = [MSD_CASE_NAMES[task].format(int(n)) for n in numbers]
    train, test = cases[:n_train], cases[n_train:]
    members: dict[str, bytes] = {"._" + task: APPLE_DOUBLE, f"{task}/._imagesTr": APPLE_DOUBLE}
    images, labels = {}, {}
    for case in cases:
        images[case], labels[case] = _case_volumes(rng, shape, len(spec["classes"]), entry["modality"],
                                                   len(spec["channels"]))
        members[f"{task}/imagesTr/{case}.nii.gz" if case in train else f"{task}/imagesTs/{case}.nii.gz"] = \
            _nifti_gz(images[case])
        if case in train:
            members[f"{task}/labelsTr/{case}.nii.gz"] = _nifti_gz(labels[case])
            members[f"{task}/imagesTr/._{case}.nii.gz"] = APPLE_DOUBLE
    document = {
        "name": task.split("_", 1)[1], "description": f"{task.split('_', 1)[1]} segmentation",
        "reference": "medprobe test fake", "licence": "CC-BY-SA 4.0", "release": "1.0 04/05/2018",
        "tensorImageSize": "4D" if len(spec["channels"]) > 1 else "3D",
        "modality": {str(i): name for i, name in enumerate(spec["channels"])},
        "labels": {str(i): name for i, name in enumerate(["background", *spec["classes"]])},
        "numTraining": n_train, "numTest": n_test,
        "training": [{"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"} for case in train],
        "test": [f"./imagesTs/{case}.nii.gz" for case in test],
    }
    members[f"{task}/dataset.json"] = json.dumps(document, indent=1).encode()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in (task, f"{task}/imagesTr", f"{task}/labelsTr", f"{task}/imagesTs"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_525_000_000
            tar.addfile(info)
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_525_000_000
            tar.addfile(info, io.BytesIO(data))
    return {"files": {path.name: _file_record(path)}, "folder": task, "train": train, "test": test,
            "images": images, "labels": labels}


def make_amos(folder: Path, ct_train: int = 6, mri_train: int = 3, ct_val: int = 3, mri_val: int = 1,
              n_test: int = 2, shape: tuple[int, int, int] = (16, 16, 8), seed: int = 0) -> dict:
    """amos22.zip as Zenodo record 7155725 delivers it: amos22/dataset.json ("labels" with the 15 organs, "arota"
    as published, and {"image", "label"} lists "training" (./imagesTr, ./labelsTr) and "validation" (./imagesVa,
    ./labelsVa)), imagesTr/, labelsTr/, imagesVa/, labelsVa/ and unlabelled imagesTs/, files amos_<nnnn>.nii.gz;
    case numbers below 500 are CT (int16 HU), from 500 on MRI (float32). Returns the zip by name (path, sha256, md5)
    and the case ids of each section and modality.
    """
    import json
    import zipfile

    classes = get_dataset("amos22")["labels"]["classes"]
    rng = np.random.default_rng(seed)
    ct = [f"amos_{n:04d}" for n in rng.choice(np.arange(1, 500), size=ct_train + ct_val + n_test, replace=False)]
    mri = [f"amos_{n:04d}" for n in rng.choice(np.arange(500, 600), size=mri_train + mri_val, replace=False)]
    sections = {"training": ct[:ct_train] + mri[:mri_train],
                "validation": ct[ct_train:ct_train + ct_val] + mri[mri_train:]}
    test = ct[ct_train + ct_val:]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "amos22.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for directory in ("", "imagesTr/", "labelsTr/", "imagesVa/", "labelsVa/", "imagesTs/"):
            zf.writestr(f"amos22/{directory}", b"")
        for section, suffix in (("training", "Tr"), ("validation", "Va")):
            for case in sections[section]:
                image, labels = _case_volumes(rng, shape, len(classes), "mri" if case in mri else "ct")
                zf.writestr(f"amos22/images{suffix}/{case}.nii.gz", _nifti_gz(image))
                zf.writestr(f"amos22/labels{suffix}/{case}.nii.gz", _nifti_gz(labels))
        for case in test:
            zf.writestr(f"amos22/imagesTs/{case}.nii.gz", _nifti_gz(_case_volumes(rng, shape, len(classes), "ct")[0]))
        document = {
            "name": "AMOS", "description": "AMOS: A Large-Scale Abdominal Multi-Organ Benchmark",
            "tensorImageSize": "3D", "reference": "medprobe test fake", "licence": "CC-BY-SA 4.0",
            "release": "1.0 01/05/2022", "modality": {"0": "CT"},
            "labels": {str(i): name for i, name in enumerate(["background", *classes])},
            "numTraining": len(sections["training"]), "numValidation": len(sections["validation"]),
            "numTest": len(test),
            **{section: [{"image": f"./images{suffix}/{case}.nii.gz", "label": f"./labels{suffix}/{case}.nii.gz"}
                         for case in sections[section]]
               for section, suffix in (("training", "Tr"), ("validation", "Va"))},
            "test": [{"image": f"./imagesTs/{case}.nii.gz"} for case in test],
        }
        zf.writestr("amos22/dataset.json", json.dumps(document, indent=4))
    return {"files": {path.name: _file_record(path)}, "training": sections["training"],
            "validation": sections["validation"], "test": test, "ct": ct, "mri": mri}

# ---- end Medical Segmentation Decathlon, AMOS22 -----------------------------------------------------------------


# ---- CT-RATE, BTCV (local folders) ------------------------------------------------------------------------------

# The 43 columns of CT-RATE's dataset/metadata/{train,validation}_metadata.csv, in file order (as printed from the
# real validation_metadata.csv in public download scripts), and that file's first row for the non-geometry fields.
CT_RATE_METADATA_HEADER = (
    "VolumeName,Manufacturer,SeriesDescription,ManufacturerModelName,PatientSex,PatientAge,ReconstructionDiameter,"
    "DistanceSourceToDetector,DistanceSourceToPatient,GantryDetectorTilt,TableHeight,RotationDirection,ExposureTime,"
    "XRayTubeCurrent,Exposure,FilterType,GeneratorPower,FocalSpots,ConvolutionKernel,PatientPosition,RevolutionTime,"
    "SingleCollimationWidth,TotalCollimationWidth,TableSpeed,TableFeedPerRotation,SpiralPitchFactor,"
    "DataCollectionCenterPatient,ReconstructionTargetCenterPatient,ExposureModulationType,CTDIvol,"
    "ImagePositionPatient,ImageOrientationPatient,SliceLocation,SamplesPerPixel,PhotometricInterpretation,Rows,"
    "Columns,XYSpacing,RescaleIntercept,RescaleSlope,RescaleType,NumberofSlices,ZSpacing,StudyDate").split(",")
CT_RATE_METADATA_ROW = {"Manufacturer": "Philips", "SeriesDescription": "HRCT", "ManufacturerModelName": "iCT 256",
                        "PatientSex": "M", "PatientAge": "036Y", "ReconstructionDiameter": "350",
                        "GantryDetectorTilt": "0", "TableHeight": "71", "RotationDirection": "CW",
                        "ExposureTime": "622", "XRayTubeCurrent": "186", "Exposure": "116", "FilterType": "YA",
                        "ConvolutionKernel": "YA", "PatientPosition": "HFS", "ExposureModulationType": "Z DOM",
                        "CTDIvol": "7.830488795", "SamplesPerPixel": "1", "PhotometricInterpretation": "MONOCHROME2",
                        "StudyDate": "20210427"}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _gz_bytes(image) -> bytes:
    import gzip

    return gzip.compress(image.to_bytes(), mtime=0)


def _ct_rate_geometry(index: int) -> dict:
    """Metadata geometry strings per volume: mostly axial, every fourth a sagittal acquisition, spacings varied."""
    import json

    orientation = [0, 1, 0, 0, 0, -1] if index % 4 == 3 else [1, 0, 0, 0, 1, 0]
    xy = 0.341796875 if index % 2 else 0.75
    return {"ImagePositionPatient": f"[{-166 - index}, {9 + index}, {56.2998657 - index}]",
            "ImageOrientationPatient": json.dumps(orientation).replace(",", ", "),
            "XYSpacing": f"[{xy}, {xy}]", "ZSpacing": "1.5" if index % 3 else "1.25"}


def make_ct_rate(folder: Path, train_patients: int = 12, valid_patients: int = 3,
                 releases: tuple[str, ...] = ("fixed", "original"), seed: int = 0) -> dict:
    """What `hf download ibrahimhamamci/CT-RATE --repo-type dataset --local-dir <folder>` leaves: dataset/
    multi_abnormality_labels/{train,valid}_predicted_labels.csv (VolumeName with .nii.gz, then the 18 abnormality
    columns as 0/1), dataset/metadata/{train,validation}_metadata.csv (the real 43 columns) and the volumes of each
    release: dataset/<split>_fixed/... int16 HU with the geometry the publisher's fix script writes (LPS spacing,
    origin and direction as a RAS affine), dataset/<split>/... the first release: float32 stored values,
    HU = RescaleSlope * value + RescaleIntercept, under a blank header (no affine, or identity, alternately).
    Patients are numbered 1..n (so train_10 sorts after train_9, not after train_1); patient p has scan a (and b
    when p % 3 == 0), each with reconstruction 1 (and 2 when p is even). A volume (X, Y, Z) is air (-1000) around
    a 40 HU body holding a 700 HU marker near one corner, so orientation errors show.
    Returns the root and, per volume stem: official split, patient, labels, HU array in file voxel order, the RAS
    affine, ImageOrientationPatient, slope and intercept, and its file per release.
    """
    import json

    import nibabel as nib
    import pandas as pd

    from medprobe.datasets.entries.volumes_local import CT_RATE_ABNORMALITIES

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    volumes, index = {}, 0
    for official, n_patients in (("train", train_patients), ("valid", valid_patients)):
        rows, meta_rows = [], []
        for patient in range(1, n_patients + 1):
            for scan in "ab"[:1 + (patient % 3 == 0)]:
                for reconstruction in range(1, 2 + (patient % 2 == 0)):
                    stem = f"{official}_{patient}_{scan}_{reconstruction}"
                    shape = (10 + index % 3, 8 + index % 4, 3 + index % 2)
                    hu = np.full(shape, -1000, np.int16)
                    hu[1:-1, 1:-1, :] = 40
                    hu[1:3, 1:2, :] = 700
                    slope, intercept = (2.0, -2048.0) if index % 5 == 4 else (1.0, -1024.0)
                    geometry = _ct_rate_geometry(index)
                    orientation = np.array(json.loads(geometry["ImageOrientationPatient"]), float).reshape(2, 3)
                    xy, z = json.loads(geometry["XYSpacing"])[0], float(geometry["ZSpacing"])
                    lps = np.eye(4)
                    lps[:3, :3] = np.column_stack([*orientation, np.cross(*orientation)]) * np.array([xy, xy, z])
                    lps[:3, 3] = json.loads(geometry["ImagePositionPatient"])
                    affine = LPS_TO_RAS @ lps
                    labels = rng.integers(0, 2, size=len(CT_RATE_ABNORMALITIES))
                    sub = f"{official}_{patient}/{official}_{patient}_{scan}/{stem}.nii.gz"
                    files = {}
                    if "fixed" in releases:
                        fixed = nib.Nifti1Image(hu, affine)
                        fixed.set_qform(affine, code=1)
                        fixed.set_sform(affine, code=1)
                        files["fixed"] = f"dataset/{official}_fixed/{sub}"
                    if "original" in releases:
                        stored = ((hu.astype(np.float32) - np.float32(intercept)) / np.float32(slope))
                        original = nib.Nifti1Image(stored, None if index % 2 else np.eye(4))
                        files["original"] = f"dataset/{official}/{sub}"
                    for release, relative in files.items():
                        path = folder / relative
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(_gz_bytes(fixed if release == "fixed" else original))
                    rows.append([f"{stem}.nii.gz", *map(str, labels)])
                    meta_rows.append({**CT_RATE_METADATA_ROW, **geometry, "VolumeName": f"{stem}.nii.gz",
                                      "Rows": str(shape[1]), "Columns": str(shape[0]), "NumberofSlices": str(shape[2]),
                                      "RescaleSlope": f"{slope:g}", "RescaleIntercept": f"{intercept:g}"})
                    volumes[stem] = {"split": official, "patient": f"{official}_{patient}", "labels": labels.tolist(),
                                     "hu": hu, "affine": affine, "orientation": orientation.reshape(-1).tolist(),
                                     "slope": slope, "intercept": intercept, "files": files}
                    index += 1
        tables = folder / "dataset" / "multi_abnormality_labels"
        tables.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=["VolumeName", *CT_RATE_ABNORMALITIES]).to_csv(
            tables / f"{official}_predicted_labels.csv", index=False)
        metadata = folder / "dataset" / "metadata"
        metadata.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(meta_rows, columns=CT_RATE_METADATA_HEADER).to_csv(
            metadata / f"{'validation' if official == 'valid' else official}_metadata.csv", index=False)
    return {"root": folder, "volumes": volumes}


# BTCV organ HU values (label 1..13), chosen so every organ lands on its own grey level in the wide window.
BTCV_HU = [100, 150, 160, 20, 30, 60, 10, 250, 200, 180, 45, 5, -5]
BTCV_AFFINE = np.array([[-0.8, 0, 0, 170.0], [0, -0.8, 0, 190.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])


def make_btcv(folder: Path, shape: tuple[int, int, int] = (16, 16, 3), testing: int = 2, seed: int = 0) -> dict:
    """Abdomen/RawData.zip unpacked: RawData/Training/img/img<nnnn>.nii.gz (int16 HU) and RawData/Training/label/
    label<nnnn>.nii.gz (uint8, 0..13) for the 30 training cases (0001-0010, 0021-0040) on one LPS-like grid, plus
    `testing` unlabelled RawData/Testing/img volumes from 0061. Organ k is a 3x3 box (HU BTCV_HU[k-1]) in its own
    4x4 cell over a random run of slices, absent from a case now and then; the rest is 0 HU body and -1000 HU air.
    Returns the root and, per case id, its image, labels (file voxel order) and voxel count per label value.
    """
    import nibabel as nib

    from medprobe.datasets.entries.volumes_local import BTCV_CASES

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    for sub in ("RawData/Training/img", "RawData/Training/label", "RawData/Testing/img"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    cases = {}
    for number in [*BTCV_CASES, *range(61, 61 + testing)]:
        labels = np.zeros(shape, np.uint8)
        for value in range(1, 14):
            if rng.random() < 0.15:
                continue
            x, y = 4 * ((value - 1) // 4), 4 * ((value - 1) % 4)
            start = int(rng.integers(0, shape[2]))
            labels[x:x + 3, y:y + 3, start:start + int(rng.integers(1, shape[2] + 1))] = value
        image = np.full(shape, -1000, np.int16)
        image[:, 1:-1, :] = 0
        for value in range(1, 14):
            image[labels == value] = BTCV_HU[value - 1]
        if number > 40:
            (folder / f"RawData/Testing/img/img{number:04d}.nii.gz").write_bytes(
                _gz_bytes(nib.Nifti1Image(image, BTCV_AFFINE)))
            continue
        (folder / f"RawData/Training/img/img{number:04d}.nii.gz").write_bytes(
            _gz_bytes(nib.Nifti1Image(image, BTCV_AFFINE)))
        (folder / f"RawData/Training/label/label{number:04d}.nii.gz").write_bytes(
            _gz_bytes(nib.Nifti1Image(labels, BTCV_AFFINE)))
        cases[f"img{number:04d}"] = {"image": image, "labels": labels,
                                     "counts": np.bincount(labels.reshape(-1), minlength=14)}
    return {"root": folder, "cases": cases}

# ---- end CT-RATE, BTCV ------------------------------------------------------------------------------------------

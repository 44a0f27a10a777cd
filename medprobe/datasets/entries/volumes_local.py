"""CT volumes behind a login or token, read from the user's local copy: CT-RATE (Hugging Face) and BTCV (Synapse)."""

ENTRIES: dict[str, dict] = {}

# ---- CT-RATE ---------------------------------------------------------------------------------------------------

# The 18 columns of dataset/multi_abnormality_labels/*_predicted_labels.csv, in file order (after VolumeName), as the
# publisher's own code lists them (ibrahimethemhamamci/CT-CLIP, scripts/zero_shot.py).
CT_RATE_ABNORMALITIES = [
    "Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
    "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
    "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion", "Mosaic attenuation pattern",
    "Peribronchial thickening", "Consolidation", "Bronchiectasis", "Interlobular septal thickening",
]
CT_RATE_REPO = "ibrahimhamamci/CT-RATE"
CT_RATE_LAYOUT = f"""\
<path>/                                        the --local-dir of the download commands below
  dataset/multi_abnormality_labels/train_predicted_labels.csv   VolumeName,<the 18 abnormalities> (0/1)
  dataset/multi_abnormality_labels/valid_predicted_labels.csv   same columns; the official validation set = test
  dataset/train_fixed/train_<patient>/train_<patient>_<scan>/train_<patient>_<scan>_<reconstruction>.nii.gz
  dataset/valid_fixed/valid_<patient>/valid_<patient>_<scan>/valid_<patient>_<scan>_<reconstruction>.nii.gz
With the dataset option `release: original` (copies made before the publisher fixed the NIfTI headers) the volumes
are in dataset/train/ and dataset/valid/ (same sub-folders), and these tables are needed as well:
  dataset/metadata/train_metadata.csv, dataset/metadata/validation_metadata.csv
                                               RescaleSlope, RescaleIntercept, XYSpacing, ZSpacing,
                                               ImagePositionPatient, ImageOrientationPatient per VolumeName
Download (Hugging Face dataset {CT_RATE_REPO}, gated):
  1. log in at https://huggingface.co, open https://huggingface.co/datasets/{CT_RATE_REPO} and accept its terms;
  2. create a read token at https://huggingface.co/settings/tokens and put it in the environment variable HF_TOKEN
     of the shell that downloads (export HF_TOKEN=hf_...), or store it once with `hf auth login`;
  3. download, one folder per command:
     hf download {CT_RATE_REPO} --repo-type dataset --local-dir <path> --include "dataset/multi_abnormality_labels/*"
     hf download {CT_RATE_REPO} --repo-type dataset --local-dir <path> --include "dataset/valid_fixed/*"
     hf download {CT_RATE_REPO} --repo-type dataset --local-dir <path> --include "dataset/train_fixed/*"
     (older huggingface_hub releases: `huggingface-cli download` with the same arguments, `huggingface-cli login`).
All volumes are about 12 TB. With the option `max_volumes: N` only the first N volumes of each official split in
name order are read (train_1_a_1, train_1_a_2, train_2_a_1, ...), so the folders of the first patients are
enough, e.g. --include "dataset/valid_fixed/valid_1/*"."""

ENTRIES["ct_rate"] = {
    "title": "CT-RATE: non-contrast chest CT volumes with 18 report-derived abnormality labels",
    "modality": "ct",
    "dimensionality": "3d",
    "format": "nifti",
    "channels": 1,
    "adapter": "medprobe.datasets.adapters.ct_rate",
    "source": {"kind": "local", "layout": CT_RATE_LAYOUT},
    "options": {
        # The release the HF commands above fetch (dataset/*_fixed) holds int16 Hounsfield units with spacing,
        # origin and direction in the header, written by the publisher's fix script (CT-RATE discussions #58/#59):
        # metadata RescaleSlope/Intercept already applied. The first release's headers were blank: raw stored
        # values, geometry only in the metadata tables; `original` rebuilds both exactly as that script does.
        "release": {"default": "fixed", "choices": ["fixed", "original"],
                    "doc": "fixed: dataset/train_fixed and valid_fixed (HU and geometry in the NIfTI headers); "
                           "original: dataset/train and valid with blank headers, rescaled to HU and placed "
                           "from dataset/metadata/*_metadata.csv"},
        "max_volumes": {"default": None,
                        "doc": "read only the first N volumes of each official split, in name order (patient, "
                               "scan, reconstruction); null reads all"},
    },
    "labels": {
        # Official split -> (our split, label table, metadata table, volume folder per release).
        "splits": {
            "train": {"split": "trainval", "table": "dataset/multi_abnormality_labels/train_predicted_labels.csv",
                      "metadata": "dataset/metadata/train_metadata.csv",
                      "volumes": {"fixed": "dataset/train_fixed", "original": "dataset/train"}},
            "valid": {"split": "test", "table": "dataset/multi_abnormality_labels/valid_predicted_labels.csv",
                      "metadata": "dataset/metadata/validation_metadata.csv",
                      "volumes": {"fixed": "dataset/valid_fixed", "original": "dataset/valid"}},
        },
    },
    # The official validation set (disjoint patients) is the test set, as in CT-CLIP; val is 10% of the training
    # patients, drawn by split_seed and stratified by the label vector.
    "split": {"policy": "adapter", "val_fraction": 0.1},
    "tasks": {"abnormalities": {"type": "multilabel", "labels": CT_RATE_ABNORMALITIES}},
    "size": "about 12 TB for all 50,188 reconstructions of 25,692 scans; the label tables are a few MB",
    "license": "CC BY-NC-SA 4.0, plus the dataset's gated terms (research and education only, no redistribution, "
               "no re-identification)",
    "citation": "Hamamci IE, Er S, Almas F, et al. Developing generalist foundation models from a multimodal dataset "
                "for 3D computed tomography. arXiv:2403.17834, 2024",
    "homepage": f"https://huggingface.co/datasets/{CT_RATE_REPO}",
    "access": "account",
}

# ---- BTCV ------------------------------------------------------------------------------------------------------

# Label values 1..13 of RawData/Training/label/*.nii.gz, in order: MONAI's BTCV dataset_0.json ("spleen", "rkid",
# "lkid", "gall", "eso", "liver", "sto", "aorta", "IVC", "veins", "pancreas", "rad", "lad"; Project-MONAI tutorials,
# 3d_segmentation/unetr_btcv_segmentation_3d) and the challenge description.
BTCV_ORGANS = ["spleen", "right_kidney", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
               "inferior_vena_cava", "portal_and_splenic_veins", "pancreas", "right_adrenal_gland",
               "left_adrenal_gland"]
BTCV_CASES = [*range(1, 11), *range(21, 41)]  # the 30 labelled training volumes (same list, MONAI dataset_0.json)
BTCV_LAYOUT = """\
<path>/                                 the folder that holds RawData/ (Abdomen/ on Synapse, or where
                                        Abdomen/RawData.zip was unzipped)
  RawData/Training/img/img0001.nii.gz ... img0010.nii.gz, img0021.nii.gz ... img0040.nii.gz   (30 CT volumes)
  RawData/Training/label/label0001.nii.gz ... label0040.nii.gz   the same 30 numbers; 0 = background, 1..13 =
                                        spleen, right kidney, left kidney, gallbladder, esophagus, liver, stomach,
                                        aorta, inferior vena cava, portal and splenic veins, pancreas, right
                                        adrenal gland, left adrenal gland
  RawData/Testing/img/                  20 volumes whose labels were never published: not used
Download: create a Synapse account, join the challenge "Multi-Atlas Labeling Beyond the Cranial Vault" (Synapse
project syn3193805) and download Abdomen/RawData.zip from its Files (in the browser, or with the Synapse command
line client: pip install synapseclient), then unzip it into <path>."""

ENTRIES["btcv"] = {
    "title": "BTCV (Multi-Atlas Labeling Beyond the Cranial Vault): abdominal CT with 13 organ label maps",
    "modality": "ct",
    "dimensionality": "3d",
    "format": "nifti",
    "channels": 1,
    "adapter": "medprobe.datasets.adapters.btcv",
    "source": {"kind": "local", "layout": BTCV_LAYOUT},
    "labels": {"image_dir": "RawData/Training/img", "label_dir": "RawData/Training/label", "cases": BTCV_CASES},
    # Only the 30 training volumes have public labels (the 20 test labels were kept by the organisers), so all
    # three splits come from them: one volume per patient, 60/20/20 by split_seed (18/6/6).
    "split": {"policy": "random", "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
    "tasks": {"organs": {"type": "segmentation", "labels": BTCV_ORGANS}},
    "size": "Abdomen/RawData.zip: 50 CT volumes and 30 label maps (the whole Synapse project, with the cervix "
            "set and augmented copies, is about 67 GB per MONAI's BTCV tutorial)",
    "license": "Synapse challenge terms: research use after registering and joining the challenge; no "
               "redistribution",
    "citation": "Landman B, Xu Z, Iglesias JE, Styner M, Langerak TR, Klein A. MICCAI multi-atlas labeling beyond "
                "the cranial vault - workshop and challenge. Proc. MICCAI Multi-Atlas Labeling Beyond Cranial "
                "Vault Workshop Challenge, 2015",
    "homepage": "https://www.synapse.org/#!Synapse:syn3193805/wiki/",
    "access": "account",
}

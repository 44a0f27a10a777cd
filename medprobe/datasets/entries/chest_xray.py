"""Chest radiograph datasets: NIH ChestX-ray14, Montgomery County, CheXpert, RSNA Pneumonia."""

ENTRIES: dict[str, dict] = {}

# ---- NIH ChestX-ray14 and Montgomery County (open downloads) ------------------------------------------------

NIH_FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
# Box static-link ids of images_001 ... images_012.tar.gz, in the order of NIH's own batch_download_zips.py (Box
# file 371647823217 of the release; reproduced verbatim in e.g. Sim-ai/CheXclusion/batch_download_zips.py). MD5s:
# published by NIH in FAQ_CHESTXRAY.pdf (Q7, Box file 249502714403), as pinned by PyHealth
# (sunlabuiuc/PyHealth, pyhealth/datasets/chestxray14.py).
NIH_ARCHIVES = [
    ("vfk49d74nhbxq3nqjg0900w5nvkorp5c", "fe8ed0a6961412fddcbb3603c11b3698"),
    ("i28rlmbvmfjbl8p2n3ril0pptcmcu9d1", "ab07a2d7cbe6f65ddd97b4ed7bde10bf"),
    ("f1t00wrtdk94satdfb9olcolqx20z2jp", "2301d03bde4c246388bad3876965d574"),
    ("0aowwzs5lhjrceb3qp67ahp0rd1l1etg", "9f1b7f5aae01b13f4bc8e2c44a4b8ef6"),
    ("v5e3goj22zr6h8tzualxfsqlqaygfbsn", "1861f3cd0ef7734df8104f2b0309023b"),
    ("asi7ikud9jwnkrnkj99jnpfkjdes7l6l", "456b53a8b351afd92a35bc41444c58c8"),
    ("jn1b4mw4n6lnh74ovmcjb8y48h8xj07n", "1075121ea20a137b87f290d6a4a5965e"),
    ("tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j", "b61f34cec3aa69f295fbb593cbd9d443"),
    ("upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj", "442a3caa61ae9b64e61c561294d1e183"),
    ("l6nilvfa9cg3s28tqv1qc1olm3gnz54p", "09ec81c4c31e32858ad8cf965c494b74"),
    ("hhq8fkdgvcari67vfhs7ppg2w6ni4jze", "499aefc67207a5a97692424cf5dbeed5"),
    ("ioqwiy20ihqwyr8pf4c24eazhh281pbu", "dc9fda1757c2de0032b63347a7d2895c"),
]
# The label table and split lists are files of the same Box release (file ids as cited by PyHealth's tests and
# public download scripts), fetched through Box's shared-file download endpoint. NIH publishes checksums only
# for the image archives, so these three stay unpinned.
NIH_BOX_FILES = {"Data_Entry_2017_v2020.csv": 219760887468, "train_val_list.txt": 256056636701,
                 "test_list.txt": 256055473534}
NIH_UNPINNED = ("NIH publishes MD5s only for the 12 image archives (FAQ_CHESTXRAY.pdf), not for the label table "
                "or the split lists")

ENTRIES["nih_chestxray14"] = {
    "title": "NIH ChestX-ray14: 112,120 frontal chest radiographs of 30,805 patients, 14 report-mined findings",
    "modality": "xray",
    "dimensionality": "2d",
    "format": "png",  # 1024 x 1024, 8-bit grey (a few RGBA files with equal channels)
    "channels": 1,
    "adapter": "medprobe.datasets.adapters.nih",
    "source": {"kind": "http", "files": [
        *({"name": f"images_{number:03d}.tar.gz", "url": f"https://nihcc.box.com/shared/static/{link}.gz",
           "md5": md5, "extract": True}  # members images/<8-digit patient>_<3-digit follow-up>.png
          for number, (link, md5) in enumerate(NIH_ARCHIVES, start=1)),
        *({"name": name, "url": "https://nihcc.app.box.com/index.php?rm=box_download_shared_file"
                                f"&vanity_name=ChestXray-NIHCC&file_id=f_{file_id}",
           "checksum_note": NIH_UNPINNED}
          for name, file_id in NIH_BOX_FILES.items()),
    ]},
    # Columns: Image Index, Finding Labels ("|"-joined, or "No Finding"), Follow-up #, Patient ID, Patient Age,
    # Patient Sex, View Position, OriginalImage[Width, Height], OriginalImagePixelSpacing[x, y].
    "labels": {"file": "Data_Entry_2017_v2020.csv", "image_column": "Image Index", "patient_column": "Patient ID",
               "findings_column": "Finding Labels", "image_dir": "images"},
    # The official patient-wise lists (86,524 train/val and 25,596 test images); val is 10% of the train/val
    # patients, drawn by split_seed, as study B and common practice do.
    "split": {"policy": "lists", "files": {"trainval": "train_val_list.txt", "test": "test_list.txt"},
              "val_fraction": 0.1},
    "tasks": {
        "findings14": {"type": "multilabel", "labels": NIH_FINDINGS},
        # Study B also scores "No Finding" (1 exactly when none of the 14 is mentioned).
        "findings15": {"type": "multilabel", "labels": [*NIH_FINDINGS, "No Finding"]},
    },
    "preprocess": {},  # the config's preprocess block applies unchanged (all images are 1024 x 1024)
    "size": "45.1 GB (12 image archives) plus 11 MB of labels and lists",
    "license": "NIH Clinical Center: unrestricted use; link to the original download site, acknowledge the NIH "
               "Clinical Center and cite Wang et al. CVPR 2017 (FAQ_CHESTXRAY.pdf)",
    "citation": "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: hospital-scale chest X-ray database "
                "and benchmarks on weakly-supervised classification and localization of common thorax diseases. "
                "CVPR 2017",
    "homepage": "https://nihcc.app.box.com/v/ChestXray-NIHCC",
    "access": "open",
}

ENTRIES["montgomery"] = {
    "title": "Montgomery County chest X-ray set (NLM): 138 tuberculosis-screening radiographs with lung masks",
    "modality": "xray",
    "dimensionality": "2d",
    "format": "png",  # 4020 x 4892 or 4892 x 4020, 12-bit grey levels (NLM readme)
    "channels": 1,
    "adapter": "medprobe.datasets.adapters.montgomery",
    # NLM's Open-i copy of the set; URL and sha256 as pinned by torch-em (constantinpape/torch-em,
    # torch_em/data/datasets/medical/montgomery.py). NLM's LHNCBC site (the homepage) serves the same files one
    # by one, without an archive.
    "source": {"kind": "http", "files": [
        {"name": "NLM-MontgomeryCXRSet.zip", "url": "https://openi.nlm.nih.gov/imgs/collections/NLM-MontgomeryCXRSet.zip",
         "sha256": "54601e952315d8f67383e9202a6e145997ade429f54f7e0af44b4e158714f424", "extract": True},
    ]},
    # MontgomerySet/CXR_png/MCUCXR_<nnnn>_<0|1>.png: the last digit is the TB reading (1 = abnormal). Each lung has
    # its own binary mask of the same name: mask_file is the left lung, mask_right_file the right one; the adapter
    # joins them into one label map, 1 = left lung and 2 = right lung (the order of the "lungs" task's labels).
    "labels": {"image_dir": "MontgomerySet/CXR_png", "left_mask_dir": "MontgomerySet/ManualMask/leftMask",
               "right_mask_dir": "MontgomerySet/ManualMask/rightMask", "label": "tb",
               "pixel_spacing_mm": [0.0875, 0.0875]},
    # One radiograph per patient, so the patient is the image; 70/15/15 seeded and stratified by the TB reading.
    "split": {"policy": "random", "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
    "tasks": {"tb": {"type": "binary", "labels": ["tb"]},
              "lungs": {"type": "segmentation", "labels": ["left_lung", "right_lung"]}},
    "preprocess": {},  # 16-bit files are windowed by the config's voi_fallback / percentiles (see the adapter)
    "size": "about 600 MB (one zip)",
    "license": "NLM terms (NLM-MontgomeryCXRSet-ReadMe.pdf): research use, do not share outside your research "
               "group, cite the two publications below",
    "citation": "Jaeger S, Candemir S, Antani S, Wang YX, Lu PX, Thoma G. Two public chest X-ray datasets for "
                "computer-aided screening of pulmonary diseases. Quant Imaging Med Surg 4(6): 475-477, 2014. "
                "Candemir S, Jaeger S, Palaniappan K, et al. Lung segmentation in chest radiographs using "
                "anatomical atlases with nonrigid registration. IEEE Trans Med Imaging 33(2): 577-590, 2014",
    "homepage": "https://data.lhncbc.nlm.nih.gov/public/Tuberculosis-Chest-X-ray-Datasets/"
                "Montgomery-County-CXR-Set/MontgomerySet/index.html",
    "access": "open",
}

# ---- end NIH ChestX-ray14 and Montgomery County ---------------------------------------------------------------

# ---- CheXpert and RSNA Pneumonia (local folders) --------------------------------------------------------------

CHEXPERT_COMPETITION5 = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
CHEXPERT_LAYOUT = """\
<path>/                      the folder that holds train.csv (CheXpert-v1.0-small/ or CheXpert-v1.0/)
  train.csv                  Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...,Support Devices
  valid.csv                  same columns; used as the test set
  train/patientNNNNN/studyN/viewN_frontal.jpg (and viewN_lateral.jpg)
  valid/patientNNNNN/studyN/viewN_frontal.jpg
Path values may keep their "CheXpert-v1.0-small/" prefix. Download after accepting the Stanford research
use agreement (see https://stanfordmlgroup.github.io/competitions/chexpert/)."""

ENTRIES["chexpert"] = {
    "title": "CheXpert (Stanford): chest radiographs labelled with 14 report-derived observations",
    "modality": "xray",
    "dimensionality": "2d",
    "format": "jpeg",
    "channels": 1,
    "adapter": "medprobe.datasets.adapters.chexpert",
    "source": {"kind": "local", "layout": CHEXPERT_LAYOUT},
    "options": {
        "uncertain": {"default": "zeros", "choices": ["zeros", "ones", "ignore", "extra"],
                      "doc": "uncertain (-1) labels: zeros -> 0 (study B), ones -> 1, ignore -> missing (skipped "
                             "per label by probes and metrics), extra -> 0 plus the task competition5_uncertain "
                             "(study B's extra output). Blank (not mentioned) is always 0"},
        "views": {"default": "frontal", "choices": ["frontal", "all"], "doc": "frontal images only, or also laterals"},
    },
    "labels": {"tables": {"train.csv": "trainval", "valid.csv": "test"}, "uncertain_suffix": " uncertain"},
    # The official test set (500 studies) is not public, so the 234-image validation set (radiologist consensus
    # labels, no uncertain values) is the test set; val is carved from train.csv by patient.
    "split": {"policy": "adapter", "val_fraction": 0.1},
    "tasks": {
        "competition5": {"type": "multilabel", "labels": CHEXPERT_COMPETITION5},
        # valid.csv has no uncertain labels, so this task can be trained but not scored on the test set.
        "competition5_uncertain": {"type": "multilabel", "when": {"uncertain": "extra"},
                                   "labels": [f"{name} uncertain" for name in CHEXPERT_COMPETITION5]},
    },
    "size": "about 11 GB (CheXpert-v1.0-small) or 439 GB (full resolution)",
    "license": "Stanford University CheXpert Dataset Research Use Agreement (non-commercial research use)",
    "citation": "Irvin J, Rajpurkar P, Ko M, et al. CheXpert: a large chest radiograph dataset with uncertainty "
                "labels and expert comparison. AAAI 2019",
    "homepage": "https://stanfordmlgroup.github.io/competitions/chexpert/",
    "access": "account",
}

RSNA_LAYOUT = """\
<path>/                                 the unzipped Kaggle download (rsna-pneumonia-detection-challenge.zip)
  stage_2_train_labels.csv              patientId,x,y,width,height,Target (one row per box)
  stage_2_train_images/<patientId>.dcm  one DICOM per patientId in the label table
  stage_2_detailed_class_info.csv       optional, not read
  stage_2_test_images/                  optional; unlabelled, not used
Download with a Kaggle account after accepting the competition rules:
  kaggle competitions download -c rsna-pneumonia-detection-challenge"""

ENTRIES["rsna_pneumonia"] = {
    "title": "RSNA Pneumonia Detection Challenge (stage 2 training set): chest radiographs",
    "modality": "xray",
    "dimensionality": "2d",
    "format": "dicom",
    "channels": 1,
    "adapter": "medprobe.datasets.adapters.rsna",
    "source": {"kind": "local", "layout": RSNA_LAYOUT},
    "labels": {"file": "stage_2_train_labels.csv", "image_dir": "stage_2_train_images", "label": "Pneumonia"},
    # Study A: 70/15/15. A patientId names one image (NIH patient ids were removed), so this is per image.
    "split": {"policy": "random", "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
    "tasks": {"pneumonia": {"type": "binary", "labels": ["Pneumonia"]}},
    # The files are 8-bit MONOCHROME2 secondary captures of already windowed images, without VOI tags:
    # min-max keeps their display contrast instead of clipping it again.
    "preprocess": {"voi_fallback": "minmax"},
    "size": "about 4 GB (Kaggle zip)",
    "license": "RSNA Pneumonia Detection Challenge competition rules (Kaggle); images from the NIH ChestX-ray14 "
               "release",
    "citation": "Shih G, Wu CC, Halabi SS, et al. Augmenting the National Institutes of Health chest radiograph "
                "dataset with expert annotations of possible pneumonia. Radiology: Artificial Intelligence "
                "1(1): e180041, 2019",
    "homepage": "https://www.kaggle.com/c/rsna-pneumonia-detection-challenge",
    "access": "account",
}

# ---- end CheXpert and RSNA Pneumonia ----------------------------------------------------------------------------

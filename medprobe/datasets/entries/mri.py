"""MRI datasets: Figshare brain tumour (Cheng et al.)."""

TUMOR_TYPES = ["meningioma", "glioma", "pituitary"]  # cjdata.label 1, 2, 3


def _figshare_zip(name: str, file_id: int, sha256: str) -> dict:
    # Each zip holds <n>.mat at its top level; extracting into a folder named like the zip keeps the four apart.
    return {"name": name, "url": f"https://ndownloader.figshare.com/files/{file_id}", "sha256": sha256,
            "extract": True, "into": name.removesuffix(".zip")}


ENTRIES = {
    "figshare_brain_tumor": {
        "title": "Figshare brain tumour dataset (Cheng et al.): 3064 T1-weighted contrast-enhanced MRI slices, "
                 "233 patients",
        "modality": "mri",
        "dimensionality": "2d",
        "format": "mat",  # MATLAB v7.3 (HDF5), one struct `cjdata` per slice
        "channels": 1,
        "adapter": "medprobe.datasets.adapters.figshare_mat",
        # Figshare article 1512427 (doi:10.6084/m9.figshare.1512427). File ids: the article's file list, as used
        # by several public loaders. sha256: pinned by torch-em (constantinpape/torch-em,
        # torch_em/data/datasets/medical/figshare_brain_tumor.py). The article also holds cvind.mat (the
        # authors' 5-fold indices) and a README; neither is needed (the split is ours, patient-wise) and no
        # checksum for them is published where we could see it, so they are not downloaded.
        "source": {"kind": "http", "files": [
            _figshare_zip("brainTumorDataPublic_1-766.zip", 3381290,
                          "cdac0a7f4152cb34dd79b13543da96c37a6928ad8cb823e2662150b1a73ade54"),
            _figshare_zip("brainTumorDataPublic_767-1532.zip", 3381296,
                          "d18e896d14f7af791cdd3d9b9342f9f974742a06132effde5a5219209862b4ce"),
            _figshare_zip("brainTumorDataPublic_1533-2298.zip", 3381293,
                          "612d9f506c55c54db5f2f38b6d50741ef97a6d7c32b3e1be76e789674a97aefb"),
            _figshare_zip("brainTumorDataPublic_2299-3064.zip", 3381302,
                          "9a673c55d139133cfbc57097bf155b5ac9f33684ee97f40bf2afba332d416a3a"),
        ]},
        "labels": {"struct": "cjdata", "classes": TUMOR_TYPES},
        "mask_in_source": True,  # cjdata.tumorMask (and tumorBorder) per slice, for later segmentation stages
        # Patient-wise like study B; patients sorted and shuffled by split_seed, stratified by tumour type.
        "split": {"policy": "random", "fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
        "tasks": {"tumor_type": {"type": "multiclass", "labels": TUMOR_TYPES}},
        # MR intensities have no absolute scale: each slice is windowed to its own 5th-95th percentile, study B's
        # MRI protocol (PROTOCOLS.md). Override with preprocess.percentiles, or voi_fallback: minmax.
        "preprocess": {"voi_fallback": "percentile", "percentiles": [5, 95]},
        "size": "880 MB (four zips, 879,493,326 bytes)",
        "license": "CC BY 4.0",
        "citation": "Cheng J, Huang W, Cao S, Yang R, Yang W, Yun Z, Wang Z, Feng Q. Enhanced performance of brain "
                    "tumor classification via tumor region augmentation and partition. PLoS ONE 10(10): e0140381, "
                    "2015. Data: Cheng J, brain tumor dataset, figshare, doi:10.6084/m9.figshare.1512427",
        "homepage": "https://doi.org/10.6084/m9.figshare.1512427",
        "access": "open",
    },
}

"""The dataset kind users declare for their own files (medprobe.datasets.user_table): one template entry whose
modality, dimensionality, channels and tasks are filled in from each dataset's options and files."""

USER_LAYOUT = """\
<path>/                      the folder the table's paths are relative to
  <table>                    CSV, TSV or parquet (option `table`; may also lie elsewhere, given absolute):
                             one row per item with its path (a file, or a folder holding one DICOM series),
                             its patient, its label(s) or mask path, and optionally its split
  <the files it lists>       DICOM, PNG, JPEG, TIFF, NIfTI (.nii, .nii.gz), DICOM series folders, or slides
                             (.svs, .ndpi, .mrxs, .scn, .tif, ...)
See README section "Your own data" for worked examples."""

ENTRIES = {
    "user_table": {
        "title": "your own dataset: a folder of files plus a table",
        "modality": "from your files",
        "dimensionality": "from your files",
        "format": "from your files",
        "channels": 1,
        "adapter": "medprobe.datasets.adapters.user_table",
        "build": "medprobe.datasets.user_table:build_entry",
        "options_file": "spec",
        "source": {"kind": "local", "layout": USER_LAYOUT},
        "options": {
            "spec": {"default": None, "doc": "a YAML file holding any of these options (a relative `path` in it is "
                                             "relative to the file); options in the config override it"},
            "table": {"default": None, "doc": "the table, relative to `path` or absolute"},
            "columns": {"default": {}, "doc": "table columns by role: path, patient, id, label, labels, mask, split"},
            "task": {"default": None, "doc": "name, type (binary | multiclass | multilabel | segmentation), "
                                             "classes, separator"},
            "modality": {"default": None, "doc": "stated modality (ct, mri, xray, ...); default: from the files"},
            "dimensionality": {"default": None, "choices": [None, "2d", "3d", "wsi"],
                               "doc": "stated dimensionality; default: from the files"},
            "channels": {"default": None, "choices": [None, 1, 3], "doc": "stated channels; default: from the files"},
            "split_fractions": {"default": {"train": 0.7, "val": 0.15, "test": 0.15},
                                "doc": "shares of the seeded patient-level split when the table has no split column"},
            "on_invalid": {"default": "fail", "choices": ["fail", "skip"],
                           "doc": "fail: any bad row stops the run, all named; skip: bad rows are skipped and counted"},
        },
        "split": {"policy": "adapter"},
        "tasks": {},
        "size": "your files",
        "license": "your data's own",
        "citation": None,
        "homepage": None,
        "access": "local",
    },
}

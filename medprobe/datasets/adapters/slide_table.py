"""Whole-slide images listed in a CSV: one row per slide with its path, its patient and 0/1 slide labels.

Only the table is read here: the preprocess stage tiles each slide itself (medprobe.wsi), so any format
OpenSlide opens works. Serves the generated demo_wsi; real datasets shaped as a table plus slides are entries.
"""

from medprobe.datasets.adapters import read_table_items

read_items = read_table_items

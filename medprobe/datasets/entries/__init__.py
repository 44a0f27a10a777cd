"""Dataset registry entries, one module per family; medprobe.datasets.registry merges them."""

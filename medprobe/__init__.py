"""medprobe: benchmark frozen vision foundation models on medical images, with auditable provenance."""

__version__ = "0.1.0"

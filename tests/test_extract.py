"""Feature extraction: the batched memory-mapped path equals the model on the same tensors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medprobe.backbones.load import load_backbone, state_dict_sha256
from medprobe.features.extract import choose_device, choose_precision, extract_array
from medprobe.registry import UnknownEntryError


@pytest.fixture(scope="module")
def split_array(tmp_path_factory):
    path = tmp_path_factory.mktemp("arrays") / "train.npy"
    rng = np.random.default_rng(0)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(21, 1, 40, 40))
    array[:] = rng.integers(0, 256, size=array.shape, dtype=np.uint8)
    array.flush()
    return path


@pytest.mark.parametrize("workers", [0, 1])
def test_extract_matches_direct_forward(split_array, tmp_path, workers):
    module, identity = load_backbone("vit_tiny_random")
    out = tmp_path / "features.npy"
    shape = extract_array(split_array, out, module, 32, batch_size=8, num_workers=workers,
                          device=torch.device("cpu"), precision="fp32")
    features = np.load(out, mmap_mode="r")
    assert shape == features.shape == (21, 2, 192) and features.dtype == np.float16
    images = torch.from_numpy(np.load(split_array)).float().div(255)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        tokens = module(images)
    expected = torch.stack([tokens["cls"], tokens["patch_mean"]], 1).half().numpy()
    np.testing.assert_allclose(features.astype(np.float32), expected.astype(np.float32), rtol=0, atol=2e-3)
    assert identity["weights"].startswith("random init")


def test_random_init_is_reproducible_and_named():
    first, id_first = load_backbone("vit_tiny_random")
    second, id_second = load_backbone("vit_tiny_random")
    assert id_first["weights_sha256"] == id_second["weights_sha256"] == state_dict_sha256(second.model)


def test_pixels_baseline_pools_the_image(split_array, tmp_path):
    module, identity = load_backbone("pixels")
    extract_array(split_array, tmp_path / "p.npy", module, 32, batch_size=8, num_workers=0,
                  device=torch.device("cpu"), precision="fp32")
    features = np.load(tmp_path / "p.npy")
    assert features.shape == (21, 1, 16)  # (32 / 8) ** 2
    assert identity["weights"] == "none"


def test_extraction_is_deterministic(split_array, tmp_path):
    module, _ = load_backbone("vit_tiny_random")
    for name in ("a.npy", "b.npy"):
        extract_array(split_array, tmp_path / name, module, 32, batch_size=8, num_workers=0,
                      device=torch.device("cpu"), precision="fp32")
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


def test_device_and_precision_choice():
    assert choose_precision("auto", torch.device("cpu")) == "fp32"
    assert choose_precision("auto", torch.device("cuda")) == "bf16"
    if not torch.cuda.is_available():
        assert choose_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            choose_device("cuda")


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(UnknownEntryError, match="unknown backbone 'vit_tiny_rand'. Did you mean vit_tiny_random"):
        load_backbone("vit_tiny_rand")

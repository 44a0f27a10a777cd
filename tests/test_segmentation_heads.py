"""Patch-token grids and the segmentation heads: grids equal the model's own tokens; heads find a planted region."""

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from medprobe.backbones.load import HFDinov2Backbone, load_backbone
from medprobe.features.patch_grid import extract_patch_grids, patch_grid
from medprobe.probes.segmentation import Decoder3d, predict_3d, run_seg_2d, run_seg_3d, seeded_head

# --- patch grids ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, prefix, size", [("vit_tiny_patch16_224", 1, (32, 48)),
                                                ("vit_small_patch14_reg4_dinov2", 5, (28, 42))])
def test_patch_grid_is_forward_features_without_prefix(name, prefix, size):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True).eval()
    images = torch.randn(2, 3, *size)
    with torch.inference_mode():
        grid, tokens = patch_grid(model, images), model.forward_features(images)
    assert model.num_prefix_tokens == prefix  # CLS, plus 4 registers for DINOv2-reg
    assert grid.shape == (2, model.embed_dim, 2, 3)
    # row-major patch order: token prefix + i * w + j is grid position (i, j), after the final norm
    torch.testing.assert_close(grid[1, :, 1, 2], tokens[1, prefix + 1 * 3 + 2], rtol=0, atol=0)
    torch.testing.assert_close(grid[0, :, 0, 1], tokens[0, prefix + 1], rtol=0, atol=0)
    torch.testing.assert_close(grid.flatten(2).transpose(1, 2), tokens[:, prefix:], rtol=0, atol=0)


@pytest.mark.parametrize("registers", [False, True])
def test_patch_grid_of_a_transformers_dinov2(registers):
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config, model = (Dinov2WithRegistersConfig, Dinov2WithRegistersModel) if registers else (Dinov2Config, Dinov2Model)
    torch.manual_seed(0)
    model = model(config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         patch_size=14, image_size=28)).eval()
    module = HFDinov2Backbone(model, {"mean": [0.5] * 3, "std": [0.5] * 3})
    images = torch.rand(2, 1, 28, 42)
    with torch.inference_mode():
        grid = patch_grid(module, images)
        tokens = model(pixel_values=module.normalise(images)).last_hidden_state
    prefix = 5 if registers else 1
    assert tokens.shape[1] == prefix + 6 and grid.shape == (2, 32, 2, 3)
    torch.testing.assert_close(grid[1, :, 1, 2], tokens[1, prefix + 5], rtol=0, atol=0)


def test_patch_grid_rejects_a_model_without_patch_tokens():
    with pytest.raises(ValueError, match="no ViT patch tokens"):
        patch_grid(torch.nn.Conv2d(3, 8, 3), torch.zeros(1, 3, 16, 16))


def test_extract_patch_grids_writes_the_grids(tmp_path):
    rng = np.random.default_rng(0)
    images = np.lib.format.open_memmap(tmp_path / "train.npy", mode="w+", dtype=np.uint8, shape=(5, 1, 40, 40))
    images[:] = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    images.flush()
    module, _ = load_backbone("vit_tiny_random")
    out = tmp_path / "grids.npy"
    shape = extract_patch_grids(tmp_path / "train.npy", out, module, 32, batch_size=2, device=torch.device("cpu"),
                                precision="fp32")
    grids = np.load(out, mmap_mode="r")
    assert shape == grids.shape == (5, 192, 2, 2) and grids.dtype == np.float16
    resized = F.interpolate(torch.from_numpy(np.array(images)).float() / 255, size=(32, 32), mode="bilinear",
                            antialias=True, align_corners=False)
    with torch.inference_mode():
        expected, tokens = patch_grid(module, resized), module(resized)
    # batches of 2 here, of 5 there: float32 sums in another order, so equal to float16 rounding
    np.testing.assert_allclose(grids.astype(np.float32), expected.numpy(), rtol=0, atol=2e-3)
    # the same tokens the global features average: patch_mean is the grid's mean
    torch.testing.assert_close(expected.mean((2, 3)), tokens["patch_mean"], rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".*partial*"))


# --- planted tasks --------------------------------------------------------------------------------------------------

D, GRID, S = 32, 8, 32


@pytest.fixture(autouse=True)
def one_thread():
    """Heads this small run faster on one thread, and their time stops depending on the machine's other load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted_2d(n: int, n_classes: int, seed: int):
    """Noise tokens; class k covers a disk of the grid whose tokens are shifted along channels 4k..4k+3. The mask is
    the same disk at S (pixel centres mapped to grid units), so a head must learn the shift and upsample well."""
    rng = np.random.default_rng(seed)
    grids = rng.normal(size=(n, D, GRID, GRID)).astype(np.float32)
    masks = np.zeros((n, S, S), dtype=np.uint8)
    token_centres = np.arange(GRID) + 0.5
    pixel_centres = (np.arange(S) + 0.5) * GRID / S
    for i in range(n):
        for k in range(1, n_classes):
            cy, cx = rng.uniform(2.5, GRID - 2.5, size=2)
            radius = rng.uniform(1.8, 2.5)
            inside_tokens = (token_centres[:, None] - cy) ** 2 + (token_centres[None] - cx) ** 2 <= radius ** 2
            inside_pixels = (pixel_centres[:, None] - cy) ** 2 + (pixel_centres[None] - cx) ** 2 <= radius ** 2
            grids[i, 4 * k:4 * k + 4][:, inside_tokens] += 2.5
            masks[i][inside_pixels] = k
    return grids.astype(np.float16), masks


def memmap(path, array):
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    out[:] = array
    out.flush()
    return np.load(path, mmap_mode="r")


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    p, t = pred == label, truth == label
    return 2 * (p & t).sum() / (p.sum() + t.sum())


@pytest.fixture(scope="module")
def binary_task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg2d")
    grids, masks = planted_2d(48, 2, seed=0)
    splits = {"train": slice(0, 32), "val": slice(32, 40), "test": slice(40, 48)}
    return {split: (memmap(folder / f"{split}_x.npy", grids[rows]), memmap(folder / f"{split}_m.npy", masks[rows]))
            for split, rows in splits.items()}


PARAMS_2D = {"epochs": 25, "lr": 1e-2, "batch_size": 8, "device": "cpu"}


@pytest.mark.parametrize("head", ["seg_linear", "seg_decoder"])
def test_2d_heads_find_the_planted_region(binary_task, head):
    (x_train, m_train), (x_val, m_val), (x_test, m_test) = binary_task["train"], binary_task["val"], binary_task["test"]
    pred, info = run_seg_2d(head, x_train, m_train, x_val, m_val, x_test, PARAMS_2D, n_classes=2, seed=0)
    assert pred.shape == (8, S, S) and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
    assert dice(np.zeros_like(m_test), m_test, 1) == 0  # the all-background baseline
    assert dice(pred, m_test, 1) > 0.7, dice(pred, m_test, 1)
    assert info["best_val_dice"] > 0.7 and len(info["val_dice"]) == 25
    assert info["best_val_dice"] == max(info["val_dice"]) == info["val_dice"][info["best_epoch"] - 1]


@pytest.mark.parametrize("head", ["seg_linear", "seg_decoder"])
def test_2d_heads_are_deterministic(binary_task, head):
    (x_train, m_train), (x_val, m_val), (x_test, _) = binary_task["train"], binary_task["val"], binary_task["test"]
    runs = [run_seg_2d(head, x_train, m_train, x_val, m_val, x_test, PARAMS_2D | {"epochs": 3}, 2, seed)
            for seed in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1]["train_loss"] == runs[1][1]["train_loss"] != runs[2][1]["train_loss"]


def test_2d_multiclass_shapes_and_signal(tmp_path):
    grids, masks = planted_2d(40, 3, seed=1)
    x = {s: memmap(tmp_path / f"{s}.npy", grids[r]) for s, r in (("tr", slice(0, 28)), ("va", slice(28, 34)),
                                                                  ("te", slice(34, 40)))}
    pred, info = run_seg_2d("seg_decoder", x["tr"], masks[:28], x["va"], masks[28:34], x["te"],
                            PARAMS_2D | {"epochs": 20}, n_classes=3, seed=3)
    assert pred.shape == (6, S, S) and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1, 2}
    assert min(dice(pred, masks[34:], k) for k in (1, 2)) > 0.5
    assert info["head"] == "seg_decoder" and info["params"]["epochs"] == 20


def test_2d_rejects_bad_input(binary_task):
    (x_train, m_train), (x_val, m_val) = binary_task["train"], binary_task["val"]
    with pytest.raises(ValueError, match="unknown 2-D segmentation head 'seg_unet'"):
        run_seg_2d("seg_unet", x_train, m_train, x_val, m_val, x_val, {}, 2, 0)
    with pytest.raises(ValueError, match=r"unknown params \['epoch'\]"):
        run_seg_2d("seg_linear", x_train, m_train, x_val, m_val, x_val, {"epoch": 3}, 2, 0)
    with pytest.raises(ValueError, match="val grids .* do not match"):
        run_seg_2d("seg_linear", x_train, m_train, x_val, m_val[:3], x_val, {}, 2, 0)
    with pytest.raises(ValueError, match="train masks: label 2 found, but n_classes is 2"):
        run_seg_2d("seg_linear", x_train, np.full_like(m_train, 2), x_val, m_val, x_val, {}, 2, 0)


def planted_volumes(n: int, seed: int, depth: int = 12, dim: int = 16, grid: int = 6, size: int = 12):
    """Noise slice grids (Z, dim, grid, grid); a cube of tokens is shifted, and its label is the same cube at size."""
    rng = np.random.default_rng(seed)
    xs, ms = [], []
    scale = size // grid
    for _ in range(n):
        x = rng.normal(size=(depth, dim, grid, grid)).astype(np.float32)
        m = np.zeros((depth, size, size), dtype=np.uint8)
        z, y, w = rng.integers(1, depth - 5), *rng.integers(0, grid - 3, size=2)
        x[z:z + 5, :4, y:y + 3, w:w + 3] += 1.5
        m[z:z + 5, y * scale:(y + 3) * scale, w * scale:(w + 3) * scale] = 1
        xs.append(x.astype(np.float16))
        ms.append(m)
    return xs, ms


def test_3d_decoder_finds_the_planted_cube():
    xs, ms = planted_volumes(10, seed=0)
    params = {"epochs": 15, "lr": 1e-2, "z_crop": 8, "device": "cpu"}  # Z = 12: cropped training, chunked predicting
    preds, info = run_seg_3d(xs[:6], ms[:6], xs[6:8], ms[6:8], xs[8:], params, n_classes=2, seed=0)
    assert [p.shape for p in preds] == [(12, 12, 12)] * 2 and all(p.dtype == np.uint8 for p in preds)
    scores = [dice(p, m, 1) for p, m in zip(preds, ms[8:])]
    assert min(scores) > 0.6, scores
    assert info["head"] == "seg_decoder (3-D)" and info["best_val_dice"] > 0.6
    again, _ = run_seg_3d(xs[:6], ms[:6], xs[6:8], ms[6:8], xs[8:], params, n_classes=2, seed=0)
    for first, second in zip(preds, again):
        np.testing.assert_array_equal(first, second)


def test_3d_chunked_prediction_equals_one_pass():
    model = seeded_head(Decoder3d, 8, 4, seed=1, device=torch.device("cpu")).eval()
    volume = np.random.default_rng(2).normal(size=(11, 8, 4, 4)).astype(np.float16)
    whole = predict_3d(model, volume, (8, 8), chunk=64, device=torch.device("cpu"))
    for chunk in (1, 3, 5):
        np.testing.assert_array_equal(predict_3d(model, volume, (8, 8), chunk, torch.device("cpu")), whole)
    assert whole.shape == (11, 8, 8) and len(np.unique(whole)) > 1


@pytest.mark.parametrize("shape", [(3, 4, 9, 7), (2, 5, 3, 6, 4)])
def test_dice_ce_loss_equals_monais_with_its_gradients(shape):
    """The training loss is MONAI's DiceCELoss(softmax, one-hot targets, batch Dice) bit for bit, gradients too."""
    from monai.losses import DiceCELoss

    from medprobe.probes.segmentation import dice_ce_loss

    generator = torch.Generator().manual_seed(shape[0])
    logits = torch.randn(shape, generator=generator) * 3
    target = torch.randint(0, shape[1] - 1, (shape[0], 1, *shape[2:]), generator=generator)  # a class never present
    ours_in, monai_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = dice_ce_loss(ours_in, target)
    expected = DiceCELoss(softmax=True, to_onehot_y=True, batch=True)(monai_in, target)
    ours.backward()
    expected.backward()
    assert torch.equal(ours, expected)
    assert torch.equal(ours_in.grad, monai_in.grad)

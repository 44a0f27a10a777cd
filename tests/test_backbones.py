"""Backbone registry and loaders: every entry builds and writes its declared tokens; weights load offline or fail
fast with instructions. No network: pretrained weights are stood in for by random ones saved to files."""

import json
import socket
import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from medprobe.backbones import load
from medprobe.backbones.load import (WeightsFileError, WeightsUnavailableError, build_backbone, file_sha256,
                                     load_backbone, state_dict_sha256, token_names)
from medprobe.backbones.registry import BACKBONES
from medprobe.cli import main

SMALL_M = 100  # entries up to this many million parameters run for real on the CPU, bigger ones on meta
SMALL = [name for name, entry in BACKBONES.items() if entry["params_m"] <= SMALL_M]
LARGE = [name for name, entry in BACKBONES.items() if entry["params_m"] > SMALL_M]
PRETRAINED = [name for name, entry in BACKBONES.items() if entry.get("pretrained")]


@pytest.fixture(autouse=True)
def few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 and an empty hub cache; returns the cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    cache.mkdir()
    return cache


def small_resolution(entry: dict) -> int:
    return 2 * entry.get("patch_size", 8)


def check_tokens(name: str, tokens: dict, batch: int, last_n: int) -> None:
    entry = BACKBONES[name]
    assert list(tokens) == token_names(entry, last_n)
    for token, value in tokens.items():
        width = entry.get("embed_dim") or value.shape[1]  # the pixel baseline's width depends on the resolution
        assert tuple(value.shape) == (batch, width), (name, token)


def test_registry_covers_the_studies():
    import open_clip

    assert len(PRETRAINED) >= 20
    controls = [name for name, entry in BACKBONES.items() if entry["source"] != "pixels" and not entry["pretrained"]]
    assert controls and all(name.endswith("_random") for name in controls)
    assert not any(name.endswith("_random") for name in PRETRAINED)
    known = set(timm.list_pretrained())
    for name in PRETRAINED:
        entry = BACKBONES[name]
        assert entry["gating"] == "open" or entry["gating"].startswith("gated: accept terms on https://"), name
        assert entry["revision"] is None or len(entry["revision"]) == 40, name
        if entry["source"] == "timm":
            assert f"{entry['model']}.{entry['pretrained_tag']}" in known, name
            assert entry["hub_repo"] == f"timm/{entry['model']}.{entry['pretrained_tag']}"
            mean = timm.models.get_pretrained_cfg(f"{entry['model']}.{entry['pretrained_tag']}").mean
        elif entry["pretrained_tag"]:
            mean = open_clip.get_pretrained_cfg(entry["model"], entry["pretrained_tag"])["mean"]
        else:
            continue  # BiomedCLIP's pinned config; RAD-DINO's preprocessor_config.json, read at load time
        assert list(mean) == pytest.approx(entry["normalization"]["mean"]), name
    families = {BACKBONES[name]["family"] for name in PRETRAINED}
    assert {"DINOv2", "DINOv2+reg", "DINOv3", "DINOv3 ConvNeXt", "BiomedCLIP", "CLIP", "RAD-DINO", "MAE"} <= families


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_entry_builds_on_meta(name):
    """No memory: the architecture, parameter count and token shapes of even the 7B model, in milliseconds."""
    entry = BACKBONES[name]
    last_n = 4 if entry["last_n"] else 1
    module = build_backbone(name, meta=True, last_n=last_n)
    if entry["source"] != "pixels":
        params = sum(p.numel() for p in module.model.parameters()) / 1e6
        assert params == pytest.approx(entry["params_m"], rel=0.01)
    resolution = entry.get("native_resolution") or 64
    for channels in (1, 3):
        tokens = module(torch.zeros(2, channels, resolution, resolution, device="meta"))
        check_tokens(name, tokens, 2, last_n)


@pytest.mark.parametrize("name", SMALL)
def test_small_entries_run_on_cpu(name):
    """Real forward passes at a small grid (position embeddings interpolated; the native resolution is checked on
    meta above, for time); grayscale equals the same image as RGB; the last-n path gives the plain path's tokens."""
    entry = BACKBONES[name]
    last_n = 4 if entry["last_n"] else 1
    module = build_backbone(name, last_n=last_n)
    if entry["source"] != "pixels" and entry["normalization"]["mean"] is not None:
        assert module.mean.flatten().tolist() == pytest.approx(entry["normalization"]["mean"])
        assert module.std.flatten().tolist() == pytest.approx(entry["normalization"]["std"])
    gray = torch.rand(2, 1, small_resolution(entry), small_resolution(entry))
    with torch.inference_mode():
        tokens = module(gray)
        check_tokens(name, tokens, 2, last_n)
        rgb = module(gray.expand(-1, 3, -1, -1).contiguous())
        if entry["source"] != "pixels":
            for token in tokens:
                torch.testing.assert_close(rgb[token], tokens[token])
        if last_n > 1:
            module.last_n = 1
            plain = module(gray)
            assert list(plain) == entry["tokens"]
            for token in plain:
                torch.testing.assert_close(plain[token], tokens[token], rtol=1e-4, atol=1e-4)


def test_the_biggest_models_stay_off_the_cpu():
    assert {"dinov2_vitg14", "dinov3_vit7b16", "clip_vitl14_openai", "dinov3_convnext_large"} <= set(LARGE)


def test_pixels_pool_every_channel():
    module = build_backbone("pixels")
    assert module(torch.rand(2, 1, 32, 32))["pixels"].shape == (2, 16)
    assert module(torch.rand(2, 3, 32, 32))["pixels"].shape == (2, 48)


def test_channels_other_than_1_or_3_are_refused():
    module = build_backbone("vit_tiny_random")
    with pytest.raises(ValueError, match=r"expected images \(B, 1 or 3, H, W\)"):
        module(torch.rand(2, 2, 32, 32))


@pytest.mark.parametrize("name", ["dinov3_convnext_tiny", "pixels"])
def test_last_n_needs_a_cls_token(name):
    with pytest.raises(ValueError, match="last_n > 1 needs a ViT"):
        build_backbone(name, last_n=4)
    with pytest.raises(ValueError, match="last_n > 1 needs a ViT"):
        load_backbone(name, last_n=4)


def test_last_n_matches_forward_intermediates_by_hand():
    """cls_block-k is the CLS of block -k through the final norm (DINOv2 linear eval), not the raw residual."""
    module = build_backbone("dinov2_vits14_random", last_n=3)
    model, x = module.model, torch.rand(1, 1, 28, 28)
    with torch.inference_mode():
        tokens = module(x)
        blocks = model.norm(model.forward_intermediates(module.normalise(x), indices=3, intermediates_only=True,
                                                        output_fmt="NLC", return_prefix_tokens=True)[0][1])
    torch.testing.assert_close(tokens["cls_block-3"], blocks[:, 0])


@pytest.mark.parametrize("name", PRETRAINED)
def test_offline_without_cache_fails_fast_and_says_what_to_do(offline, name):
    entry = BACKBONES[name]
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as caught:
        load_backbone(name, cache_dir=offline)
    assert time.monotonic() - start < 5
    message = str(caught.value)
    for needed in (f"backbone '{name}'", "HF_HUB_OFFLINE=1", entry["hub_repo"], entry["hub_weights"][0], "revision",
                   str(offline), f"hf download {entry['hub_repo']}", f"weights: {{files: {{{name}: path/to/"):
        assert needed in message, needed
    for config in entry.get("hub_configs", []):
        assert config in message


def test_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as sock:  # a port nobody listens on: connection refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=f"127.0.0.1:{port} unreachable"):
        load_backbone("mae_vitb16", cache_dir=tmp_path)
    assert time.monotonic() - start < 5


def test_gated_repo_message_says_where_to_accept(offline, monkeypatch):
    url = "https://huggingface.co/facebook/dinov3-vits16-pretrain-lvd1689m"
    gated = {**BACKBONES["dinov3_vits16"], "gating": f"gated: accept terms on {url}"}
    monkeypatch.setitem(BACKBONES, "gated_copy", gated)
    with pytest.raises(WeightsUnavailableError, match=f"(?s)accept terms on {url}.*HF_TOKEN"):
        load_backbone("gated_copy", cache_dir=offline)


@pytest.fixture(scope="module")
def dinov2_file(tmp_path_factory):
    """Random DINOv2-S weights saved the way timm's hub copies are (a safetensors state dict), with a classifier
    head as supervised checkpoints carry: the loader must drop it, the backbone has none."""
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    torch.manual_seed(1)
    model = timm.create_model("vit_small_patch14_dinov2", num_classes=0)
    save_file(model.state_dict() | {"head.weight": torch.zeros(10, 384), "head.bias": torch.zeros(10)}, str(path))
    return path, state_dict_sha256(model)


@pytest.mark.parametrize("device_meta", [False, True])
def test_local_weights_file_loads_offline(offline, dinov2_file, device_meta):
    path, weights_hash = dinov2_file
    module, identity = load_backbone("dinov2_vits14", weights_file=path, device_meta=device_meta)
    assert identity["weights_file_sha256"] == file_sha256(path)
    assert identity["weights_sha256"] == weights_hash  # the file's weights, not a random init
    assert identity["weights_origin"] == "local file" and identity["weights_source"] == str(path)
    assert identity["revision_resolved"] is None and identity["normalization"]["mean"] == [0.485, 0.456, 0.406]
    check_tokens("dinov2_vits14", module(torch.rand(2, 1, 28, 28)), 2, 1)


@pytest.mark.parametrize("name", ["dinov3_vits16", "dinov3_convnext_tiny"])
def test_dinov3_weights_on_meta(offline, tmp_path, name):
    """Materialised straight from the file; DINOv3's RoPE periods are computed buffers, not stored: recomputed."""
    reference = build_backbone(name)
    path = tmp_path / "model.safetensors"
    save_file(reference.model.state_dict(), str(path))
    module, identity = load_backbone(name, weights_file=path, device_meta=True)
    assert identity["weights_sha256"] == state_dict_sha256(reference.model)
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        for token, value in reference(x).items():
            torch.testing.assert_close(module(x)[token], value)


def test_hub_cache_is_used_offline(offline, dinov2_file):
    path, weights_hash = dinov2_file
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline / "models--timm--vit_small_patch14_dinov2.lvd142m"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "model.safetensors").write_bytes(path.read_bytes())
    _, identity = load_backbone("dinov2_vits14", cache_dir=offline, last_n=2)
    assert identity["weights_origin"] == "hub cache" and identity["revision_resolved"] == commit
    assert identity["revision_requested"] is None and identity["weights_sha256"] == weights_hash
    assert identity["tokens"] == ["cls", "patch_mean", "cls_block-2"]


def tiny_open_clip_entry(vision_cfg: dict) -> dict:
    return {**BACKBONES["biomedclip_vitb16"], "vision_config": {"embed_dim": 32, "vision_cfg": vision_cfg},
            "embed_dim": 32, "native_resolution": 32}


@pytest.mark.parametrize("vision_cfg, prefix", [
    ({"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16}, "visual."),
    ({"timm_model_name": "vit_tiny_patch16_224", "timm_pool": "", "timm_proj": "linear", "image_size": 224}, ""),
], ids=["openai_vit_full_clip_file", "timm_trunk_visual_only_file"])
def test_open_clip_weights_file(offline, monkeypatch, tmp_path, vision_cfg, prefix):
    monkeypatch.setitem(BACKBONES, "tiny_clip", tiny_open_clip_entry(vision_cfg))
    reference = build_backbone("tiny_clip", last_n=2)
    state = {prefix + k: v for k, v in reference.model.state_dict().items()}
    if prefix:
        state["text.proj"] = torch.zeros(1)  # text tower keys are ignored
    path = tmp_path / "open_clip_model.safetensors"
    save_file(state, str(path))
    module, identity = load_backbone("tiny_clip", weights_file=path, last_n=2)
    assert identity["weights_sha256"] == state_dict_sha256(reference.model)
    x = torch.rand(2, 1, 48, 48)  # not the native 32 px: position embeddings are interpolated
    with torch.inference_mode():
        tokens = module(x)
        check_tokens("tiny_clip", tokens, 2, 2)
        torch.testing.assert_close(tokens["cls"], reference(x)["cls"])


@pytest.fixture
def tiny_dinov2(monkeypatch):
    config = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "patch_size": 14, "image_size": 28}
    monkeypatch.setitem(BACKBONES, "tiny_dinov2", {**BACKBONES["rad_dino"], "hf_config": config, "embed_dim": 32,
                                                   "native_resolution": 28})
    return build_backbone("tiny_dinov2", last_n=2)


def test_hf_weights_file_with_legacy_key_names(offline, tmp_path, tiny_dinov2):
    """Older transformers saved attention.attention.query; from_pretrained renames it to today's q_proj."""
    legacy = {k.replace("attention.q_proj", "attention.attention.query"): v
              for k, v in tiny_dinov2.model.state_dict().items()}
    save_file(legacy, str(tmp_path / "model.safetensors"))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.25] * 3, "image_std": [0.5] * 3}))
    module, identity = load_backbone("tiny_dinov2", weights_file=tmp_path, last_n=2)  # a folder works too
    assert identity["weights_sha256"] == state_dict_sha256(tiny_dinov2.model)
    assert identity["normalization"]["mean"] == [0.25] * 3
    x = torch.rand(2, 1, 42, 42)
    with torch.inference_mode():
        tokens = module(x)
    check_tokens("tiny_dinov2", tokens, 2, 2)
    (tmp_path / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no preprocessor_config.json beside"):
        load_backbone("tiny_dinov2", weights_file=tmp_path / "model.safetensors")


def test_hf_last_n_uses_the_final_layernorm(tiny_dinov2):
    x = torch.rand(1, 3, 28, 28)
    with torch.inference_mode():
        tokens = tiny_dinov2(x)
        hidden = tiny_dinov2.model(pixel_values=tiny_dinov2.normalise(x), output_hidden_states=True).hidden_states
        torch.testing.assert_close(tokens["cls_block-2"], tiny_dinov2.model.layernorm(hidden[-2][:, 0]))


def test_missing_or_unreadable_local_file_is_named(offline, tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=f"{missing} does not exist.*weights.files.mae_vitb16"):
        load_backbone("mae_vitb16", weights_file=missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFileError, match=f"cannot load {garbage}"):
        load_backbone("mae_vitb16", weights_file=garbage)


def test_wrong_architecture_file_is_refused(offline, dinov2_file):
    with pytest.raises(WeightsFileError, match="dinov2_vitb14"):
        load_backbone("dinov2_vitb14", weights_file=dinov2_file[0])


def test_random_controls_have_no_weights_to_load(tmp_path):
    with pytest.raises(ValueError, match="no pretrained weights"):
        load_backbone("vit_tiny_random", weights_file=tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="meta=True builds without weights"):
        build_backbone("dinov2_vits14", pretrained=True, meta=True)


def test_offline_check_does_not_wait_for_the_network(offline):
    start = time.monotonic()
    assert load.hub_unreachable() == "HF_HUB_OFFLINE=1"
    assert time.monotonic() - start < 0.1


def test_cli_backbones_table_and_json(capsys):
    assert main(["backbones"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["name", "source", "model", "params", "(M)", "embed", "dim", "patch", "native", "res",
                                "license", "gating"]
    assert len(table) == len(BACKBONES) + 1
    assert main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    rad_dino = next(row for row in rows if row["name"] == "rad_dino")
    assert rad_dino["model"] == "microsoft/rad-dino" and rad_dino["native_resolution"] == 518
    assert next(row for row in rows if row["name"] == "dinov2_vits14")["model"] == "vit_small_patch14_dinov2.lvd142m"

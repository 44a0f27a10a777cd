"""Backbone registry: one plain-data entry per backbone; medprobe/backbones/load.py has one loader per source.

Entry keys
  source            "timm" | "open_clip" | "hf_transformers" | "pixels"
  model             timm architecture, open_clip model name, or Hugging Face repo id
  pretrained_tag    timm / open_clip pretrained tag (None where the source has none)
  pretrained        False for the *_random controls (init_seed fixes their weights)
  hub_repo          Hugging Face repo the weights come from
  hub_weights       candidate weight files in that repo, first one present wins
  hub_configs       further files the loader needs from the repo (hf_transformers)
  revision          pinned hub commit, or None: no commit could be verified offline when this registry was
                    written, so the commit actually resolved at load time is recorded in provenance instead
  patch_size, embed_dim (width of every token written), native_resolution (pixels the weights were trained at)
  normalization     {"source", "mean", "std"}: what the model's own config gives. The loader takes them from that
                    config (timm pretrained_cfg, open_clip pretrained cfg, the repo's preprocessor_config.json);
                    these copies are for display and consistency tests, except BiomedCLIP's, pinned with its config
  tokens            feature tokens written: cls + patch_mean for ViTs, pooled for ConvNeXt; last_n says whether
                    cls_block-2 .. cls_block-n (CLS of earlier blocks, DINOv2 linear-eval style) are available
  timm_kwargs       extra timm.create_model arguments; vision_config / quick_gelu: open_clip tower build
  hf_config         architecture config (hf_transformers) for building without the hub
  license, gating   "open" | "gated: accept terms on <url>"; family, size: labels for figures; params_m: millions

Random-init entries say so in their name: their numbers are controls, never results. DINOv3 weights come from
timm's ungated hub copies (Meta's facebook/dinov3-* repos are gated); the DINOv3 License applies either way.
"""

from __future__ import annotations

from medprobe.registry import lookup

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
INCEPTION = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
OPENAI_CLIP = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
VIT_TOKENS = ["cls", "patch_mean"]
DINOV3_LICENSE = "DINOv3 License (https://ai.meta.com/resources/models-and-libraries/dinov3-license/)"
RANDOM_LICENSE = "Apache-2.0 (architecture only; random weights)"


def _timm(model: str, tag: str | None, *, family: str, size: str, patch: int, dim: int, res: int, params: float,
          license: str, norm: dict = IMAGENET, kwargs: dict | None = None, seed: int | None = None) -> dict:
    """A timm entry; tag None means a random-init control (seed fixes its weights)."""
    entry = {
        "source": "timm",
        "model": model,
        "pretrained_tag": tag,
        "pretrained": tag is not None,
        "patch_size": patch,
        "embed_dim": dim,
        "native_resolution": res,
        "normalization": {"source": "timm pretrained_cfg", **norm},
        "tokens": ["pooled"] if model.startswith("convnext") else VIT_TOKENS,
        "last_n": not model.startswith("convnext"),
        # dynamic_img_size: one set of weights at every resolution (position embeddings interpolated), so a
        # resolution sweep compares the same model. ConvNeXt needs nothing: it is size-agnostic.
        "timm_kwargs": kwargs if kwargs is not None else {"dynamic_img_size": True},
        "license": license,
        "gating": "open",
        "family": family,
        "size": size,
        "params_m": params,
    }
    if tag is None:
        return entry | {"init_seed": seed}
    return entry | {"hub_repo": f"timm/{model}.{tag}", "hub_weights": ["model.safetensors"], "revision": None}


def _dinov2(size: str, arch: str, dim: int, params: float, registers: bool) -> dict:
    model = f"vit_{arch}_patch14_{'reg4_' if registers else ''}dinov2"
    return _timm(model, "lvd142m", family="DINOv2+reg" if registers else "DINOv2", size=size, patch=14, dim=dim,
                 res=518, params=params, license="Apache-2.0")


def _dinov3(size: str, arch: str, dim: int, params: float) -> dict:
    # timm's DINOv3 pools by averaging unless global_pool='token'; upstream uses the CLS token.
    return _timm(f"vit_{arch}_patch16_dinov3", "lvd1689m", family="DINOv3", size=size, patch=16, dim=dim, res=256,
                 params=params, license=DINOV3_LICENSE, kwargs={"dynamic_img_size": True, "global_pool": "token"})


def _convnext(size: str, arch: str, dim: int, params: float) -> dict:
    # patch_size 32: the total stride of the last stage, which is what resolutions must divide into.
    return _timm(f"convnext_{arch}", "dinov3_lvd1689m", family="DINOv3 ConvNeXt", size=size, patch=32, dim=dim,
                 res=224, params=params, license=DINOV3_LICENSE, kwargs={})


def _random(model: str, size: str, patch: int, dim: int, res: int, params: float, family: str = "random init",
            norm: dict = INCEPTION, license: str = RANDOM_LICENSE) -> dict:
    return _timm(model, None, family=family, size=size, patch=patch, dim=dim, res=res, params=params,
                 license=license, norm=norm, seed=0)


BACKBONES: dict[str, dict] = {
    # Random-init controls.
    "vit_tiny_random": _random("vit_tiny_patch16_224", "T", 16, 192, 224, 5.5),
    "vit_small_random": _random("vit_small_patch16_224", "S", 16, 384, 224, 21.7),
    "vit_base_random": _random("vit_base_patch16_224", "B", 16, 768, 224, 85.8),
    "vit_large_random": _random("vit_large_patch16_224", "L", 16, 1024, 224, 303.3),
    "dinov2_vits14_random": _random("vit_small_patch14_dinov2", "S", 14, 384, 518, 22.1,
                                    family="random init (DINOv2)", norm=IMAGENET),
    "dinov3_vits16_random": _random("vit_small_patch16_dinov3", "S", 16, 384, 256, 21.6,
                                    family="random init (DINOv3)", norm=IMAGENET,
                                    license="DINOv3 License (architecture only; random weights)"),
    "pixels": {
        "source": "pixels",
        "pool": 8,
        "tokens": ["pixels"],
        "last_n": False,
        "license": "n/a",
        "gating": "open",
        "family": "pixels",
        "size": None,
        "params_m": 0.0,
    },
    # DINOv2 (Oquab et al. 2023), with and without 4 register tokens (Darcet et al. 2024).
    "dinov2_vits14": _dinov2("S", "small", 384, 22.1, registers=False),
    "dinov2_vitb14": _dinov2("B", "base", 768, 86.6, registers=False),
    "dinov2_vitl14": _dinov2("L", "large", 1024, 304.4, registers=False),
    "dinov2_vitg14": _dinov2("g", "giant", 1536, 1136.5, registers=False),
    "dinov2_vits14_reg": _dinov2("S", "small", 384, 22.1, registers=True),
    "dinov2_vitb14_reg": _dinov2("B", "base", 768, 86.6, registers=True),
    "dinov2_vitl14_reg": _dinov2("L", "large", 1024, 304.4, registers=True),
    "dinov2_vitg14_reg": _dinov2("g", "giant", 1536, 1136.5, registers=True),
    # DINOv3 (Simeoni et al. 2025), LVD-1689M weights.
    "dinov3_vits16": _dinov3("S", "small", 384, 21.6),
    "dinov3_vits16plus": _dinov3("S+", "small_plus", 384, 28.7),
    "dinov3_vitb16": _dinov3("B", "base", 768, 85.6),
    "dinov3_vitl16": _dinov3("L", "large", 1024, 303.1),
    "dinov3_vith16plus": _dinov3("H+", "huge_plus", 1280, 840.5),
    "dinov3_vit7b16": _dinov3("7B", "7b", 4096, 6716.0),
    "dinov3_convnext_tiny": _convnext("T", "tiny", 768, 27.8),
    "dinov3_convnext_small": _convnext("S", "small", 768, 49.5),
    "dinov3_convnext_base": _convnext("B", "base", 1024, 87.6),
    "dinov3_convnext_large": _convnext("L", "large", 1536, 196.2),
    # Supervised ImageNet-21k -> 1k ViTs (Steiner et al. 2022, AugReg) and MAE (He et al. 2022).
    "vit_b16_augreg_in21k_ft_in1k": _timm("vit_base_patch16_224", "augreg2_in21k_ft_in1k",
                                          family="ViT IN-21k supervised", size="B", patch=16, dim=768, res=224,
                                          params=85.8, license="Apache-2.0", norm=INCEPTION),
    "vit_l16_augreg_in21k_ft_in1k": _timm("vit_large_patch16_224", "augreg_in21k_ft_in1k",
                                          family="ViT IN-21k supervised", size="L", patch=16, dim=1024, res=224,
                                          params=303.3, license="Apache-2.0", norm=INCEPTION),
    "mae_vitb16": _timm("vit_base_patch16_224", "mae", family="MAE", size="B", patch=16, dim=768, res=224,
                        params=85.8, license="CC-BY-NC-4.0"),
    "mae_vitl16": _timm("vit_large_patch16_224", "mae", family="MAE", size="L", patch=16, dim=1024, res=224,
                        params=303.3, license="CC-BY-NC-4.0"),
    # CLIP image towers. Tokens are in the joint image-text space (the image embedding and the projected patch
    # mean), so embed_dim is the projection width.
    "clip_vitb16_openai": {
        "source": "open_clip",
        "model": "ViT-B-16",
        "pretrained_tag": "openai",
        "pretrained": True,
        "hub_repo": "timm/vit_base_patch16_clip_224.openai",
        "hub_weights": ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"],
        "revision": None,
        "quick_gelu": True,  # OpenAI trained with QuickGELU; open_clip's ViT-B-16 config defaults to nn.GELU
        "patch_size": 16,
        "embed_dim": 512,
        "native_resolution": 224,
        "normalization": {"source": "open_clip pretrained cfg ViT-B-16/openai", **OPENAI_CLIP},
        "tokens": VIT_TOKENS,
        "last_n": True,
        "license": "MIT",
        "gating": "open",
        "family": "CLIP",
        "size": "B",
        "params_m": 86.2,
    },
    "clip_vitl14_openai": {
        "source": "open_clip",
        "model": "ViT-L-14",
        "pretrained_tag": "openai",
        "pretrained": True,
        "hub_repo": "timm/vit_large_patch14_clip_224.openai",
        "hub_weights": ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"],
        "revision": None,
        "quick_gelu": True,
        "patch_size": 14,
        "embed_dim": 768,
        "native_resolution": 224,
        "normalization": {"source": "open_clip pretrained cfg ViT-L-14/openai", **OPENAI_CLIP},
        "tokens": VIT_TOKENS,
        "last_n": True,
        "license": "MIT",
        "gating": "open",
        "family": "CLIP",
        "size": "L",
        "params_m": 304.0,
    },
    "biomedclip_vitb16": {
        "source": "open_clip",
        "model": "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        "pretrained_tag": None,
        "pretrained": True,
        "hub_repo": "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        "hub_weights": ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"],
        "revision": None,
        # Pinned copy of the vision part of the repo's open_clip_config.json (not fetchable offline): a timm
        # vit_base_patch16_224 trunk, CLS pooling (timm default), linear projection to 512 without bias.
        "vision_config": {
            "embed_dim": 512,
            "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False,
                           "timm_pool": "", "timm_proj": "linear", "image_size": 224},
        },
        "quick_gelu": False,
        "patch_size": 16,
        "embed_dim": 512,
        "native_resolution": 224,
        "normalization": {"source": "open_clip_config.json preprocess_cfg", **OPENAI_CLIP},
        "tokens": VIT_TOKENS,
        "last_n": True,
        "license": "MIT",
        "gating": "open",
        "family": "BiomedCLIP",
        "size": "B",
        "params_m": 86.2,
    },
    # RAD-DINO (Perez-Garcia et al. 2025): DINOv2 ViT-B/14 continued on chest X-rays.
    "rad_dino": {
        "source": "hf_transformers",
        "model": "microsoft/rad-dino",
        "pretrained_tag": None,
        "pretrained": True,
        "hub_repo": "microsoft/rad-dino",
        "hub_weights": ["model.safetensors"],
        "hub_configs": ["config.json", "preprocessor_config.json"],
        "revision": None,
        # The dinov2-base architecture RAD-DINO was fine-tuned from (model card), for building without the hub;
        # loading pretrained weights uses the repo's own config.json.
        "hf_config": {"model_type": "dinov2", "hidden_size": 768, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "mlp_ratio": 4, "patch_size": 14, "image_size": 518,
                      "layerscale_value": 1.0, "layer_norm_eps": 1e-6, "qkv_bias": True, "use_swiglu_ffn": False},
        "patch_size": 14,
        "embed_dim": 768,
        "native_resolution": 518,
        # Not copied here: no verified copy of the repo's preprocessor_config.json was reachable offline. The
        # loader reads image_mean / image_std from that file and records them in provenance.
        "normalization": {"source": "preprocessor_config.json (image_mean, image_std)", "mean": None, "std": None},
        "tokens": VIT_TOKENS,
        "last_n": True,
        "license": "MIT (model card; earlier revisions MSRLA); research use only, not for clinical use",
        "gating": "open",
        "family": "RAD-DINO",
        "size": "B",
        "params_m": 86.6,
    },
}


def get_backbone(name: str) -> dict:
    return lookup(BACKBONES, "backbone", name)

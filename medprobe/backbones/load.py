"""Backbone loaders: a registry entry -> a module mapping images to named feature tokens.

Contract of every loaded backbone: input float (B, C, H, W) in [0, 1], C = 1 (grayscale, replicated to 3 channels
inside) or C = 3 (RGB, used as is); output {token_name: (B, D)}. Normalisation happens inside, from the model's own
config, so the extractor never has to know which model it runs. Token names: `cls`, `patch_mean` (register tokens
excluded) and, with last_n > 1, `cls_block-2` .. `cls_block-{n}` (CLS of the preceding blocks through the final
norm, as DINOv2's linear evaluation takes them); ConvNeXt writes `pooled`, the raw-pixel baseline `pixels`.

Weights come from the Hugging Face hub cache, or from a local file per backbone. The cache is read first and
offline; a miss with HF_HUB_OFFLINE=1 or an unreachable hub raises WeightsUnavailableError within seconds (timm's
own download path retries for ~47 s) saying exactly which file is needed and where to put it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from medprobe.backbones.registry import get_backbone

PROBE_TIMEOUT_S = 3.0


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable here; the message says how to provide them."""


@dataclass(frozen=True)
class WeightFiles:
    weights: Path  # the file loaded, whose sha256 goes into provenance
    configs: dict[str, Path]  # config files found with it (hf_transformers: config.json, preprocessor_config.json)
    origin: str  # "hub cache" | "local file"
    revision: str | None  # hub commit the cache resolved to; None for local files


def state_dict_sha256(module: nn.Module) -> str:
    """Hash of the weights as they are in memory: names, shapes, dtypes and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


# --- token modules ---------------------------------------------------------------------------------------------


class TokenModule(nn.Module):
    """Shared input handling: (B, 1|3, H, W) in [0, 1] -> normalised 3-channel batch."""

    def __init__(self, model: nn.Module, normalization: dict, last_n: int = 1):
        super().__init__()
        self.model = model
        self.last_n = last_n
        self.register_buffer("mean", torch.tensor(normalization["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(normalization["std"], dtype=torch.float32).view(1, 3, 1, 1))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images (B, 1 or 3, H, W), got shape {tuple(images.shape)}")
        return (images.expand(-1, 3, -1, -1) - self.mean) / self.std


def vit_tokens(final: torch.Tensor, num_prefix: int, cls_blocks: list[torch.Tensor], project=None) -> dict:
    """final: normed tokens (B, N, D) of the last block; cls_blocks: normed CLS of blocks -2, -3, ..."""
    project = project or (lambda t: t)
    tokens = {"cls": project(final[:, 0]), "patch_mean": project(final[:, num_prefix:].mean(dim=1))}
    tokens.update({f"cls_block-{k}": project(cls) for k, cls in enumerate(cls_blocks, start=2)})
    return tokens


def timm_vit_forward(model: nn.Module, x: torch.Tensor, last_n: int, project=None) -> dict:
    if last_n == 1:
        return vit_tokens(model.forward_features(x), model.num_prefix_tokens, [], project)
    final, intermediates = model.forward_intermediates(x, indices=last_n, norm=True, return_prefix_tokens=True,
                                                       output_fmt="NLC")
    # intermediates run oldest first and end with the last block, which `final` already is
    return vit_tokens(final, model.num_prefix_tokens, [prefix[:, 0] for _, prefix in intermediates[-2::-1]], project)


class TimmBackbone(TokenModule):
    """timm ViT (DINOv2, DINOv3, supervised, MAE): CLS and mean patch token after the final norm."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return timm_vit_forward(self.model, self.normalise(images), self.last_n)


class TimmPooledBackbone(TokenModule):
    """timm CNN (DINOv3 ConvNeXt): global average pool + the head's norm, as DINOv3 defines its image token."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.model.forward_features(self.normalise(images))
        return {"pooled": self.model.forward_head(features, pre_logits=True)}


class OpenClipTimmBackbone(TokenModule):
    """open_clip image tower on a timm trunk (BiomedCLIP). Tokens are projected into the joint image-text space:
    cls is the CLIP image embedding, patch_mean the projected mean patch token."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return timm_vit_forward(self.model.trunk, self.normalise(images), self.last_n, self.model.head)


class OpenClipViTBackbone(TokenModule):
    """open_clip's own ViT tower (OpenAI CLIP), projected like OpenClipTimmBackbone. Position embeddings are
    interpolated to the input grid, as timm's dynamic_img_size does, so any multiple of the patch size works."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        from timm.layers import resample_abs_pos_embed

        tower = self.model
        x = tower.conv1(self.normalise(images))
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = tower.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        pos = resample_abs_pos_embed(tower.positional_embedding.unsqueeze(0), new_size=grid,
                                     old_size=tower.grid_size, num_prefix_tokens=1)
        x = tower.ln_pre(torch.cat([cls, x], dim=1) + pos.to(x.dtype))
        final, intermediates = tower.transformer.forward_intermediates(x, indices=self.last_n)
        cls_blocks = [tower.ln_post(t[:, 0]) for t in intermediates[-2::-1]]
        return vit_tokens(tower.ln_post(final), 1, cls_blocks, lambda t: t @ tower.proj)


class HFDinov2Backbone(TokenModule):
    """transformers Dinov2Model (RAD-DINO): last_hidden_state is layer-normed already; earlier blocks get that norm."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(pixel_values=self.normalise(images), output_hidden_states=self.last_n > 1)
        cls_blocks = [self.model.layernorm(h[:, 0]) for h in out.hidden_states[-2:-self.last_n - 1:-1]] \
            if self.last_n > 1 else []
        return vit_tokens(out.last_hidden_state, 1, cls_blocks)


class PixelBackbone(nn.Module):
    """Raw-pixel baseline: every channel average-pooled by `pool`, flattened."""

    def __init__(self, pool: int):
        super().__init__()
        self.pool = pool

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": F.avg_pool2d(images, self.pool).flatten(1)}


# --- one loader per source -------------------------------------------------------------------------------------


class StateDictSource:
    """Build the architecture, then copy a state dict in strictly (every weight must come from the file).

    meta=True builds on the meta device and allocates storage only to receive the weights: no random init, which
    for a 7B model costs minutes.
    """

    def materialise(self, entry: dict, files: WeightFiles, meta: bool) -> nn.Module:
        with torch.device("meta") if meta else nullcontext():
            model = self.build(entry, files)
        if meta:
            # computed tables (DINOv3 RoPE periods) are not in the file; timm modules know how to redo them
            stored = model.state_dict().keys()
            computed = {name.rpartition(".")[0] for name, _ in model.named_buffers() if name not in stored}
            stuck = [m for m in computed if not hasattr(model.get_submodule(m), "init_non_persistent_buffers")]
            if stuck:
                raise ValueError(f"device_meta: cannot recompute the buffers of {stuck}; load without device_meta")
            model.to_empty(device="cpu")
        self.load(model, files, entry)
        if meta:
            for module in model.modules():
                if hasattr(module, "init_non_persistent_buffers"):
                    module.init_non_persistent_buffers()
        return model


class TimmSource(StateDictSource):
    library = "timm"

    def build(self, entry: dict, files: WeightFiles | None) -> nn.Module:
        import timm

        tag = entry.get("pretrained_tag")
        name = f"{entry['model']}.{tag}" if tag else entry["model"]  # the tag selects the pretrained_cfg (mean/std)
        return timm.create_model(name, pretrained=False, num_classes=0, **entry["timm_kwargs"])

    def load(self, model: nn.Module, files: WeightFiles, entry: dict) -> None:
        import timm

        state = timm.models.load_state_dict(str(files.weights))
        # timm keeps each family's converter (original Meta / big_vision layouts -> timm) beside the model class
        convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        if convert is not None:
            state = convert(state, model)
        classifier = model.pretrained_cfg.get("classifier")  # class head in the file; the backbone has none
        for suffix in (".weight", ".bias"):
            if classifier and classifier + suffix not in model.state_dict():
                state.pop(classifier + suffix, None)
        model.load_state_dict(state, strict=True)

    def normalization(self, entry: dict, model: nn.Module, files: WeightFiles | None) -> dict:
        config = model.pretrained_cfg
        return {"source": f"timm pretrained_cfg {config.get('architecture')}.{config.get('tag')}",
                "mean": list(config["mean"]), "std": list(config["std"])}

    def wrap(self, model: nn.Module, normalization: dict, last_n: int) -> nn.Module:
        cls = TimmBackbone if hasattr(model, "num_prefix_tokens") else TimmPooledBackbone
        return cls(model, normalization, last_n)


class OpenClipSource(StateDictSource):
    library = "open_clip"

    def build(self, entry: dict, files: WeightFiles | None) -> nn.Module:
        import open_clip
        import timm
        from open_clip.model import _build_vision_tower
        from open_clip.timm_model import TimmModel

        config = entry.get("vision_config") or open_clip.get_model_config(entry["model"])
        tower = _build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu=entry["quick_gelu"])
        if isinstance(tower, TimmModel):
            # open_clip builds its timm trunk for one input size; the same architecture built with
            # dynamic_img_size has the same parameters and interpolates position embeddings per input
            tower.trunk = timm.create_model(config["vision_cfg"]["timm_model_name"], pretrained=False, num_classes=0,
                                            dynamic_img_size=True)
        return tower

    def load(self, model: nn.Module, files: WeightFiles, entry: dict) -> None:
        state = read_state_dict(files.weights)
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if any(k.startswith("visual.") for k in state):  # a full CLIP checkpoint: keep the image tower
            state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        model.load_state_dict(state, strict=True)

    def normalization(self, entry: dict, model: nn.Module, files: WeightFiles | None) -> dict:
        import open_clip

        if entry.get("vision_config"):  # hub-hosted config: the registry keeps the pinned copy
            return dict(entry["normalization"])
        config = open_clip.get_pretrained_cfg(entry["model"], entry["pretrained_tag"])
        return {"source": f"open_clip pretrained cfg {entry['model']}/{entry['pretrained_tag']}",
                "mean": list(config["mean"]), "std": list(config["std"])}

    def wrap(self, model: nn.Module, normalization: dict, last_n: int) -> nn.Module:
        from open_clip.timm_model import TimmModel

        cls = OpenClipTimmBackbone if isinstance(model, TimmModel) else OpenClipViTBackbone
        return cls(model, normalization, last_n)


class HFTransformersSource:
    library = "transformers"
    # Random weights have no image processor; a neutral normalisation keeps inputs centred.
    random_normalization = {"source": "none (random weights): 0.5 / 0.5", "mean": [0.5] * 3, "std": [0.5] * 3}

    def config(self, entry: dict, files: WeightFiles | None):
        from transformers import AutoConfig

        path = files.configs.get("config.json") if files else None
        return AutoConfig.for_model(**(json.loads(path.read_text()) if path else entry["hf_config"]))

    def build(self, entry: dict, files: WeightFiles | None) -> nn.Module:
        from transformers import AutoModel

        return AutoModel.from_config(self.config(entry, files))

    def materialise(self, entry: dict, files: WeightFiles, meta: bool) -> nn.Module:
        """from_pretrained, not load_state_dict: it renames keys saved by older transformers versions (RAD-DINO's
        attention.attention.query -> attention.q_proj) and raises on shape mismatches. It always initialises on the
        meta device, so `meta` changes nothing here."""
        from transformers import MODEL_MAPPING

        config = self.config(entry, files)
        loaded, info = MODEL_MAPPING[type(config)].from_pretrained(None, config=config,
                                                                   state_dict=read_state_dict(files.weights),
                                                                   output_loading_info=True)
        if info["missing_keys"]:
            raise ValueError(f"{files.weights}: weights missing for {sorted(info['missing_keys'])[:5]} ...; "
                             f"is this a {entry['model']} checkpoint?")
        return loaded

    def normalization(self, entry: dict, model: nn.Module, files: WeightFiles | None) -> dict:
        if files is None:
            return dict(self.random_normalization)
        path = files.configs.get("preprocessor_config.json")
        if path is None:
            raise FileNotFoundError(f"{entry['model']}: no preprocessor_config.json beside {files.weights}; the "
                                    "normalisation comes from it (copy it from the hub repo into that folder)")
        processor = json.loads(path.read_text())
        return {"source": str(path), "mean": list(processor["image_mean"]), "std": list(processor["image_std"])}

    def wrap(self, model: nn.Module, normalization: dict, last_n: int) -> nn.Module:
        return HFDinov2Backbone(model, normalization, last_n)


class PixelSource:
    library = None

    def build(self, entry: dict, files: WeightFiles | None) -> nn.Module:
        return PixelBackbone(entry["pool"])

    def normalization(self, entry: dict, model: nn.Module, files: WeightFiles | None) -> None:
        return None  # pixels stay in [0, 1]

    def wrap(self, model: nn.Module, normalization: None, last_n: int) -> nn.Module:
        return model


SOURCES = {"timm": TimmSource(), "open_clip": OpenClipSource(), "hf_transformers": HFTransformersSource(),
           "pixels": PixelSource()}


# --- weight files ------------------------------------------------------------------------------------------------


class WeightsFileError(RuntimeError):
    """A weights file exists but cannot be read or does not fit the architecture."""


def read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def local_files(name: str, entry: dict, weights_file: str | Path) -> WeightFiles:
    """A local weights file (or a folder holding the hub's file names), plus the config files beside it."""
    path = Path(weights_file).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"backbone '{name}': weights file {path} does not exist "
                                f"(set by config key weights.files.{name})")
    folder = path if path.is_dir() else path.parent
    weights = folder / entry["hub_weights"][0] if path.is_dir() else path
    if not weights.is_file() or not os.access(weights, os.R_OK):
        raise WeightsFileError(f"backbone '{name}': weights file {weights} is not a readable file")
    configs = {n: folder / n for n in entry.get("hub_configs", []) if (folder / n).is_file()}
    return WeightFiles(weights, configs, "local file", None)


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached right now, or None. Bounded to a few seconds, DNS included."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return "HF_HUB_OFFLINE=1"
    url = urlparse(constants.ENDPOINT)
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    outcome: list[OSError | None] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    if not outcome:
        return f"{address[0]}:{address[1]} did not answer within {PROBE_TIMEOUT_S:.0f} s"
    return f"{address[0]}:{address[1]} unreachable ({outcome[0]})" if outcome[0] else None


def unavailable_message(name: str, entry: dict, cache: Path, reason: str) -> str:
    repo, revision = entry["hub_repo"], entry.get("revision")
    weights = " or ".join(entry["hub_weights"])
    configs = entry.get("hub_configs", [])
    files = " ".join([entry["hub_weights"][0], *configs])
    pinned = f" --revision {revision}" if revision else ""
    beside = f" (with {' and '.join(configs)} beside it)" if configs else ""
    lines = [
        f"backbone '{name}': pretrained weights are not available here ({reason}).",
        f"  needed: {weights}{' + ' + ', '.join(configs) if configs else ''} from Hugging Face repo {repo}, "
        f"revision {revision or 'main (not pinned; the commit used is recorded in provenance)'}",
        f"  cache searched: {cache}",
        "  fix, either:",
        "    - download into that cache where the hub is reachable, then copy the cache here:",
        f"        hf download {repo} {files}{pinned} --cache-dir {cache}"
        + (f"   (if the repo has no {entry['hub_weights'][0]}: {entry['hub_weights'][1]})"
           if len(entry["hub_weights"]) > 1 else ""),
        f"    - or point this backbone at a local weights file{beside}, config key:",
        f"        weights: {{files: {{{name}: path/to/{entry['hub_weights'][0]}}}}}",
    ]
    if entry["gating"].startswith("gated"):
        lines.append(f"  the repo is gated: {entry['gating']} (logged in), then set HF_TOKEN to that account's token")
    return "\n".join(lines)


def hub_files(name: str, entry: dict, cache_dir: str | Path | None) -> WeightFiles:
    """Cache first and offline; download only when the hub answers; otherwise fail fast and say what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
    try:
        return fetch_hub_files(entry, cache, local_only=True)
    except LocalEntryNotFoundError:
        pass
    reason = hub_unreachable()
    if reason:
        raise WeightsUnavailableError(unavailable_message(name, entry, cache, reason))
    try:
        return fetch_hub_files(entry, cache, local_only=False)
    except OSError as err:  # every hub error (HTTP, gated, missing repo or file) is an OSError
        raise WeightsUnavailableError(unavailable_message(name, entry, cache, f"download failed: {err}")) from err


def fetch_hub_files(entry: dict, cache: Path, local_only: bool) -> WeightFiles:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    def get(filename: str) -> Path:
        return Path(hf_hub_download(entry["hub_repo"], filename, revision=entry.get("revision"), cache_dir=cache,
                                    local_files_only=local_only))

    for candidate in entry["hub_weights"]:
        try:
            weights = get(candidate)
            break
        except EntryNotFoundError as err:  # not cached / not in the repo: try the next file name
            missing = err
    else:
        raise missing
    configs = {filename: get(filename) for filename in entry.get("hub_configs", [])}
    # hub cache layout: <cache>/models--<org>--<name>/snapshots/<commit>/<file>
    return WeightFiles(weights, configs, "hub cache", weights.parent.name)


# --- public entry points -----------------------------------------------------------------------------------------


def token_names(entry: dict, last_n: int = 1) -> list[str]:
    """The tokens a backbone writes, in order, without running it."""
    return [*entry["tokens"], *(f"cls_block-{k}" for k in range(2, last_n + 1))]


def check_last_n(name: str, entry: dict, last_n: int) -> None:
    if not isinstance(last_n, int) or last_n < 1:
        raise ValueError(f"backbone '{name}': last_n must be a positive integer, got {last_n!r}")
    if last_n > 1 and not entry["last_n"]:
        raise ValueError(f"backbone '{name}' ({entry['source']}) writes {entry['tokens']} only: last_n > 1 needs a "
                         "ViT with a CLS token")


def build_backbone(name: str, pretrained: bool = False, meta: bool = False, last_n: int = 1) -> nn.Module:
    """The entry's architecture in its token module, with seeded random weights (no download, no cache).

    meta=True allocates nothing (`torch.device("meta")`): shapes only, for models too big to build in a test.
    pretrained=True is load_backbone without the identity.
    """
    if pretrained:
        if meta:
            raise ValueError("build_backbone: meta=True builds without weights; pretrained=True loads them")
        return load_backbone(name, last_n=last_n)[0]
    entry = get_backbone(name)
    check_last_n(name, entry, last_n)
    source = SOURCES[entry["source"]]
    with torch.random.fork_rng(devices=[]), torch.device("meta") if meta else nullcontext():
        torch.manual_seed(entry.get("init_seed", 0))
        model = source.build(entry, None)
        return source.wrap(model, source.normalization(entry, model, None), last_n).eval()


def load_backbone(name: str, *, weights_file: str | Path | None = None, cache_dir: str | Path | None = None,
                  last_n: int = 1, device_meta: bool = False) -> tuple[nn.Module, dict]:
    """Returns (module in eval mode on the CPU, identity for provenance).

    weights_file: a local file (config weights.files.<backbone>) used instead of the hub; cache_dir: the hub cache
    (default: huggingface_hub's). device_meta: build on the meta device and materialise from the weights file.
    Raises WeightsUnavailableError (not cached, hub unreachable), FileNotFoundError (weights_file missing),
    WeightsFileError (file unreadable or not this architecture), ValueError (unsupported last_n / options).
    """
    entry = get_backbone(name)
    check_last_n(name, entry, last_n)
    source = SOURCES[entry["source"]]
    if not entry.get("pretrained"):
        if weights_file is not None or device_meta:
            raise ValueError(f"backbone '{name}' has no pretrained weights (a random-init control or the pixel "
                             "baseline): weights_file and device_meta do not apply")
        module = build_backbone(name, last_n=last_n)
        normalization = source.normalization(entry, getattr(module, "model", None), None)
        return module, identity(name, entry, module, normalization, None, last_n)
    files = local_files(name, entry, weights_file) if weights_file is not None else hub_files(name, entry, cache_dir)
    try:
        model = source.materialise(entry, files, device_meta)
    except Exception as err:  # any failure to read or fit the file; the cause stays chained
        raise WeightsFileError(f"backbone '{name}': cannot load {files.weights} ({files.origin}) into "
                               f"{entry['model']}: {err}") from err
    normalization = source.normalization(entry, model, files)
    module = source.wrap(model, normalization, last_n).eval()
    return module, identity(name, entry, module, normalization, files, last_n)


def identity(name: str, entry: dict, module: nn.Module, normalization: dict | None, files: WeightFiles | None,
             last_n: int) -> dict:
    """What provenance records about a backbone: enough to rebuild it and to tell two weight sets apart."""
    ident = {"name": name, "source": entry["source"], "model": entry.get("model"),
             "pretrained_tag": entry.get("pretrained_tag"), "family": entry.get("family"), "size": entry.get("size"),
             "tokens": token_names(entry, last_n), "last_n": last_n, "torch_version": torch.__version__}
    library = SOURCES[entry["source"]].library
    if library is None:
        return ident | {"pool": entry["pool"], "weights": "none"}
    ident[f"{library}_version"] = sys.modules[library].__version__
    ident["normalization"] = normalization
    if files is None:
        ident["weights"] = f"random init (torch seed {entry.get('init_seed', 0)})"
    else:
        ident |= {"weights": "pretrained", "weights_origin": files.origin, "weights_source": str(files.weights),
                  "hub_repo": entry["hub_repo"], "revision_requested": entry.get("revision"),
                  "revision_resolved": files.revision, "weights_file_sha256": file_sha256(files.weights)}
    ident["weights_sha256"] = state_dict_sha256(module.model)
    return ident

"""Weights files: our self-describing format and the original BianqueNet checkpoint.

Our format (``bianque-weights/1``) is a torch file loadable with ``torch.load(weights_only=True)``::

    {"format": "bianque-weights/1", "variant": str, "variant_config": dict, "input_size": int,
     "class_names": [14 str], "sha256_of_state": str, "model_card": str | dict, "state_dict": {...}}

Floating-point parameters may be stored as fp16 (``half=True``); they are cast to fp32 on load.
BatchNorm running statistics are always stored in fp32.

The original checkpoint (``deeplab_upernet_aspp_psp_ab_swin_skips_1288_0.0003.pth``) is a plain state
dict whose keys start with ``module.``; it loads into the ``bianquenet`` variant with a strict key check,
with or without the prefix. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inference.classes import CLASS_NAMES
from inference.model import BianqueNet, WindowAttention, relative_position_index, build_model
from inference.variants import INPUT_SIZE_MULTIPLE, VariantConfig, get_variant

WEIGHTS_FORMAT = "bianque-weights/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_PATH = WEIGHTS_DIR / "bianque-light.pt"
ORIGINAL_CHECKPOINT_NAME = "deeplab_upernet_aspp_psp_ab_swin_skips_1288_0.0003.pth"
_HOW_TO_GET = (
    "Train the light variant with the project's training command (inference/training, it writes "
    f"{DEFAULT_WEIGHTS_PATH.name} into {WEIGHTS_DIR}), or obtain the published BianqueNet checkpoint "
    f"'{ORIGINAL_CHECKPOINT_NAME}' (336 MB, from the authors' pCloud link or the Hugging Face mirror "
    "alexbene/BianqueNet) and point the node's weights setting at it. The node never downloads weights."
)


class WeightsError(Exception):
    """A weights file is missing, unreadable, corrupt or belongs to another network variant."""


@dataclass(frozen=True)
class LoadedModel:
    model: BianqueNet
    variant: str
    config: VariantConfig
    input_size: int
    class_names: tuple[str, ...]
    sha256: str  # of the weights file
    model_card: str | dict[str, Any]
    source_format: str  # WEIGHTS_FORMAT or "original-checkpoint"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Content hash of a state dict: keys, dtypes, shapes and raw bytes, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _storage_state(model: torch.nn.Module, half: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        t = t.detach().cpu().clone()
        is_bn_stat = key.endswith(("running_mean", "running_var"))
        if half and t.is_floating_point() and not is_bn_stat:
            t = t.half()
        elif t.is_floating_point():
            t = t.float()
        out[key] = t
    return out


def save_weights(
    path: str | Path,
    model: BianqueNet,
    variant: str | None = None,
    input_size: int | None = None,
    model_card: str | dict[str, Any] | None = None,
    half: bool = True,
) -> str:
    """Write ``model`` in our format; returns the sha256 of the written file."""
    cfg = model.config
    variant = variant or cfg.name
    if variant != cfg.name:
        raise WeightsError(f"model is variant {cfg.name!r}, not {variant!r}")
    input_size = int(input_size or cfg.default_input_size)
    if input_size % INPUT_SIZE_MULTIPLE:
        raise WeightsError(f"input size {input_size} is not a multiple of {INPUT_SIZE_MULTIPLE}")
    state = _storage_state(model, half)
    payload = {
        "format": WEIGHTS_FORMAT,
        "variant": variant,
        "variant_config": cfg.to_dict(),
        "input_size": input_size,
        "class_names": list(CLASS_NAMES),
        "sha256_of_state": state_sha256(state),
        "model_card": model_card if model_card is not None else "",
        "state_dict": state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return file_sha256(path)


def save_original_layout(path: str | Path, model: BianqueNet) -> None:
    """Save a plain fp32 state dict with the ``module.`` prefix, like the published checkpoint."""
    state = {f"module.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, Path(path))


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _compare(name: str, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(
            f"{what} does not match network variant {name!r}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:3]})"
        )
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if state[k].shape != v.shape]
    if bad:
        raise WeightsError(
            f"{what} does not match network variant {name!r}: {len(bad)} tensors have other "
            f"shapes, e.g. {bad[0][0]} is {bad[0][1]} in the file but {bad[0][2]} in the network"
        )


def _load_strict(cfg: VariantConfig, state: Mapping[str, torch.Tensor], what: str) -> BianqueNet:
    """Strict key/shape check, then load without random initialisation or a second copy of the weights."""
    with torch.device("meta"):
        model = build_model(cfg)
    _compare(cfg.name, model.state_dict(), state, what)
    converted = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    model.load_state_dict(converted, strict=True, assign=True)
    for module in model.modules():
        if isinstance(module, WindowAttention):  # non-persistent buffer: not in any state dict
            module.relative_index = relative_position_index(module.window)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise WeightsError(f"{what}: tensors left unloaded: {leftover[:3]}")
    return model


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with a readable message
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc


def resolve_weights_path(path: str | Path = "default") -> Path:
    """The file behind a weights setting: ``"default"`` is :data:`DEFAULT_WEIGHTS_PATH` (the shipped light
    model), anything else a path."""
    return DEFAULT_WEIGHTS_PATH if str(path) == "default" else Path(path)


def load_weights(
    path: str | Path = "default", device: str | torch.device = "cpu", expected_variant: str | None = None
) -> LoadedModel:
    """Load our weights file or the original checkpoint; returns the model in eval mode on ``device``.

    ``path="default"`` means :data:`DEFAULT_WEIGHTS_PATH`. ``expected_variant``: raise
    :class:`WeightsError` when the file holds another variant.
    """
    p = resolve_weights_path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}. {_HOW_TO_GET}")
    data = _read(p)
    if not isinstance(data, Mapping):
        raise WeightsError(f"{p} is not a weights file (top-level object is {type(data).__name__})")
    sha = file_sha256(p)
    if "format" in data:
        loaded = _from_ours(p, data, sha)
    else:
        loaded = _from_original(p, data, sha)
    if expected_variant is not None and loaded.variant != expected_variant:
        raise WeightsError(
            f"weights file {p} holds the {loaded.variant!r} network, but the {expected_variant!r} "
            "network was requested"
        )
    loaded.model.to(device).eval()
    return loaded


def _from_ours(p: Path, data: Mapping[str, Any], sha: str) -> LoadedModel:
    if data.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{p}: unsupported weights format {data.get('format')!r} (expected {WEIGHTS_FORMAT})")
    for key in ("variant", "variant_config", "input_size", "class_names", "state_dict"):
        if key not in data:
            raise WeightsError(f"{p}: weights file lacks the {key!r} entry")
    try:
        cfg = VariantConfig.from_dict(dict(data["variant_config"]))
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{p}: invalid variant configuration: {exc}") from exc
    if cfg.name != data["variant"]:
        raise WeightsError(f"{p}: variant {data['variant']!r} disagrees with its configuration {cfg.name!r}")
    class_names = tuple(data["class_names"])
    if class_names != CLASS_NAMES:
        raise WeightsError(f"{p}: class names {class_names} differ from BianqueNet's {CLASS_NAMES}")
    state = data["state_dict"]
    recorded = data.get("sha256_of_state")
    if recorded and state_sha256(state) != recorded:
        raise WeightsError(f"{p}: weights are corrupt (state checksum mismatch)")
    input_size = int(data["input_size"])
    if input_size % INPUT_SIZE_MULTIPLE:
        raise WeightsError(f"{p}: input size {input_size} is not a multiple of {INPUT_SIZE_MULTIPLE}")
    model = _load_strict(cfg, state, f"weights file {p}")
    return LoadedModel(model, cfg.name, cfg, input_size, class_names, sha, data.get("model_card", ""), WEIGHTS_FORMAT)


def _from_original(p: Path, data: Mapping[str, Any], sha: str) -> LoadedModel:
    if not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{p} is neither a bianque-weights file nor a plain BianqueNet state dict")
    cfg = get_variant("bianquenet")
    model = _load_strict(cfg, _strip_prefix(data), f"checkpoint {p}")
    card = {"source": "original BianqueNet checkpoint (Zheng et al., Nat Commun 2022)", "file": p.name}
    return LoadedModel(model, cfg.name, cfg, 512, CLASS_NAMES, sha, card, "original-checkpoint")

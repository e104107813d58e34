"""The encoder (torchvision ResNet-18 with a 1-channel stem), the pretraining heads, encoder files, ImageNet init.

Stems (the first convolution; every other layer is torchvision's, max-pool included):

- ``"paper"``: 3×3, stride 1, padding 1 — section 4.3 of the paper ("modified the first convolution to accept a
  single-channel input (kernel 3×3, stride 1), while keeping the remaining layers unchanged").
- ``"torchvision"``: the original 7×7, stride 2, padding 3 — what the authors' public code ran.

Encoder files (``save_encoder`` / ``load_encoder``) are ``torch.save`` dicts::

    {"format": "modan-dicom-encoder", "version": 1,
     "metadata": {"arch": "resnet18", "stem": ..., "in_channels": ..., "feature_dim": 512, ...caller's keys},
     "state_dict": {...}}   # torchvision resnet18 names (conv1.weight, bn1.*, layer1.0.conv1.weight, ...), no fc.*

so a plain torchvision pipeline reads them with::

    sd = torch.load(path, weights_only=True)["state_dict"]
    net = torchvision.models.resnet18()
    net.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)      # 7, 2, 3 for the "torchvision" stem
    net.load_state_dict(sd, strict=False)                         # only fc.weight / fc.bias are missing
    net.fc = torch.nn.Identity()

and MONAI with ``monai.networks.nets.ResNet(**monai_resnet18_kwargs(stem)).load_state_dict(sd)`` (strict): MONAI's
2-D ResNet uses the same parameter names once its downsample convolutions have no bias.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from .atomic import atomic_path
from .errors import ConfigError, SourceError

FEATURE_DIM = 512
ENCODER_FORMAT = "modan-dicom-encoder"
ENCODER_FORMAT_VERSION = 1

# stem name -> (kernel, stride, padding) of conv1
STEMS: dict[str, tuple[int, int, int]] = {"paper": (3, 1, 1), "torchvision": (7, 2, 3)}

# heads of the pretraining model
HEADS = ("mlp", "fc1000", "linear")

IMAGENET_FILE = "resnet18-f37072fd.pth"
IMAGENET_URL = f"https://download.pytorch.org/models/{IMAGENET_FILE}"


def _stem_spec(stem: str) -> tuple[int, int, int]:
    try:
        return STEMS[stem]
    except KeyError:
        raise ConfigError(f"unknown stem {stem!r}: use one of {', '.join(STEMS)}") from None


def build_encoder(stem: str = "paper", in_channels: int = 1) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet-18 with the given stem and ``fc = nn.Identity()``.

    forward: images ``(N, in_channels, H, W)`` float -> features ``(N, 512)`` (global-average-pooled layer4).
    The new conv1 is initialised like torchvision initialises its convolutions (Kaiming normal, fan_out).
    """
    kernel, stride, padding = _stem_spec(stem)
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=kernel, stride=stride, padding=padding, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Identity()
    return net


class ProjectionHead(nn.Module):
    """SimCLR / SupCon projector: Linear(in_dim, hidden) - ReLU - Linear(hidden, out_dim).

    forward: ``(N, in_dim)`` -> ``(N, out_dim)`` (not normalised; the contrastive losses normalise).
    """

    def __init__(self, in_dim: int = FEATURE_DIM, hidden: int = FEATURE_DIM, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def build_head(kind: str = "mlp", *, out_dim: int = 128, n_classes: int | None = None) -> nn.Module:
    """The head put on the 512-d encoder features during pretraining.

    - ``"mlp"``: `ProjectionHead` to ``out_dim`` (paper; contrastive methods).
    - ``"fc1000"``: torchvision's own ``fc`` (Linear 512 -> 1000); the authors' code applied the contrastive loss to
      this 1000-d output with no projector.
    - ``"linear"``: Linear 512 -> ``n_classes`` logits.

    ``n_classes`` given means the cross-entropy baseline (165 classes in the paper): the head is then
    Linear 512 -> ``n_classes`` — torchvision's fc sized for the classes — whichever ``kind``.
    """
    if kind not in HEADS:
        raise ConfigError(f"unknown head {kind!r}: use one of {', '.join(HEADS)}")
    if n_classes is not None or kind == "linear":
        if not n_classes or n_classes < 1:
            raise ConfigError("the linear (cross-entropy) head needs n_classes >= 1")
        return nn.Linear(FEATURE_DIM, n_classes)
    if kind == "mlp":
        return ProjectionHead(FEATURE_DIM, FEATURE_DIM, out_dim)
    return nn.Linear(FEATURE_DIM, 1000)


class PretrainModel(nn.Module):
    """Encoder + head. forward: images ``(N, C, H, W)`` -> head outputs ``(N, D)``; `features` gives ``(N, 512)``."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images))


def build_model(
    head: str = "mlp",
    *,
    stem: str = "paper",
    in_channels: int = 1,
    out_dim: int = 128,
    n_classes: int | None = None,
) -> PretrainModel:
    """`build_encoder` + `build_head` in a `PretrainModel`."""
    return PretrainModel(build_encoder(stem, in_channels), build_head(head, out_dim=out_dim, n_classes=n_classes))


# --------------------------------------------------------------------------------------------- encoder files


def _unwrap(module: nn.Module) -> nn.Module:
    """The bare encoder inside DistributedDataParallel / torch.compile / PretrainModel wrappers."""
    while True:
        if isinstance(module, PretrainModel):
            module = module.encoder
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):  # torch.compile
            module = module._orig_mod
        elif isinstance(getattr(module, "module", None), nn.Module):  # DDP / DataParallel
            module = module.module
        else:
            return module


def _stem_of(conv1_weight: torch.Tensor) -> str:
    kernel = tuple(conv1_weight.shape[-2:])
    for name, (k, _, _) in STEMS.items():
        if kernel == (k, k):
            return name
    raise SourceError(f"conv1 has a {kernel[0]}×{kernel[1]} kernel: not one of the known stems ({', '.join(STEMS)})")


def _expected_keys(stem: str, in_channels: int) -> set[str]:
    return set(build_encoder(stem, in_channels).state_dict())


def save_encoder(encoder: nn.Module, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``encoder`` (or the encoder inside a PretrainModel / DDP / compiled wrapper) to ``path`` atomically.

    The state dict keeps torchvision's resnet18 names without ``fc.*``; tensors are moved to the CPU. ``metadata``
    (JSON-like: str, int, float, bool, None, lists and dicts of them — e.g. method, vocab labels, epochs) is stored
    with ``arch``, ``stem``, ``in_channels`` and ``feature_dim``, which are read from the encoder itself.
    """
    net = _unwrap(encoder)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items() if not k.startswith("fc.")}
    if "conv1.weight" not in state:
        raise ValueError("save_encoder expects a torchvision ResNet-18 encoder (no conv1.weight found)")
    stem = _stem_of(state["conv1.weight"])
    in_channels = int(state["conv1.weight"].shape[1])
    if set(state) != _expected_keys(stem, in_channels):
        raise ValueError("save_encoder expects a torchvision ResNet-18 encoder (its parameter names differ)")
    meta = dict(metadata or {})
    try:
        meta = json.loads(json.dumps(meta))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"encoder metadata must be JSON-like: {exc}") from exc
    meta.update(arch="resnet18", stem=stem, in_channels=in_channels, feature_dim=FEATURE_DIM)
    payload = {"format": ENCODER_FORMAT, "version": ENCODER_FORMAT_VERSION, "metadata": meta, "state_dict": state}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _torch_load(path: Path, map_location: Any, what: str) -> Any:
    if not path.is_file():
        raise SourceError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise SourceError(f"cannot read {what} {path}: not a readable torch file ({type(exc).__name__})") from None


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _read_encoder_file(path: Path, map_location: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    obj = _torch_load(path, map_location, "encoder file")
    if isinstance(obj, dict) and obj.get("format") == ENCODER_FORMAT:
        state, meta = obj.get("state_dict"), dict(obj.get("metadata") or {})
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, meta = obj, {}  # a plain torchvision-style state dict
    else:
        raise SourceError(f"{path} is not an encoder file (expected a modan-dicom encoder or a resnet18 state dict)")
    if not isinstance(state, dict):
        raise SourceError(f"{path} is not an encoder file (no state_dict)")
    state = {k: v for k, v in _strip_prefixes(state).items() if not k.startswith("fc.")}
    conv1 = state.get("conv1.weight")
    if not isinstance(conv1, torch.Tensor) or conv1.ndim != 4:
        raise SourceError(f"{path} is not a ResNet-18 encoder (no conv1.weight)")
    stem, in_channels = _stem_of(conv1), int(conv1.shape[1])
    if meta.get("stem", stem) != stem:
        raise SourceError(f"{path}: metadata says stem {meta['stem']!r} but conv1 is the {stem!r} stem")
    meta.update(arch="resnet18", stem=stem, in_channels=in_channels, feature_dim=FEATURE_DIM)
    return state, meta


def load_encoder_with_metadata(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> tuple[torchvision.models.ResNet, dict[str, Any]]:
    """`load_encoder` and the file's metadata (``arch``, ``stem``, ``in_channels``, ``feature_dim`` + saved keys)."""
    path = Path(path)
    state, meta = _read_encoder_file(path, map_location)
    net = build_encoder(meta["stem"], meta["in_channels"])
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2]
        detail = first[0].strip() if first else "parameter names or shapes differ"
        raise SourceError(f"{path} is not a torchvision ResNet-18 encoder: {detail[:300]}") from None
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        net = net.to(map_location)
    return net, meta


def load_encoder(path: str | os.PathLike[str], map_location: Any = "cpu") -> torchvision.models.ResNet:
    """Rebuild the encoder saved at ``path`` (stem and channels read from its conv1) and load it strictly.

    Accepts `save_encoder` files and plain torchvision-style resnet18 state dicts (``fc.*`` ignored; ``module.`` /
    ``_orig_mod.`` prefixes stripped). Returns the module in training mode, like any freshly built torch module; call
    ``.eval()`` for inference. forward: ``(N, in_channels, H, W)`` -> ``(N, 512)``.
    Raises `SourceError` for a missing, unreadable or foreign file.
    """
    return load_encoder_with_metadata(path, map_location)[0]


def monai_resnet18_kwargs(stem: str = "paper", in_channels: int = 1) -> dict[str, Any]:
    """Arguments for ``monai.networks.nets.ResNet`` giving the same network as `build_encoder` (same names).

    ``bias_downsample=False`` makes MONAI's downsample convolutions bias-free like torchvision's, so the parameter
    names and shapes match ours exactly; ``feed_forward=False`` drops the fc, so forward gives the 512-d features.
    """
    kernel, stride, _ = _stem_spec(stem)
    return dict(
        block="basic",
        layers=[2, 2, 2, 2],
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=kernel,
        conv1_t_stride=stride,
        no_max_pool=False,
        bias_downsample=False,
        feed_forward=False,
    )


# --------------------------------------------------------------------------------------------- ImageNet init


def imagenet_weights_path() -> Path:
    """Where torchvision caches ResNet18_Weights.IMAGENET1K_V1: ``torch.hub.get_dir()/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def imagenet_encoder(
    stem: str = "torchvision",
    weights_path: str | os.PathLike[str] | None = None,
    in_channels: int = 1,
) -> torchvision.models.ResNet:
    """A ResNet-18 encoder initialised from torchvision's ImageNet weights (IMAGENET1K_V1), read without network.

    ``weights_path``: the ``resnet18-f37072fd.pth`` file, or a folder holding it; default `imagenet_weights_path`.
    With ``in_channels=1`` conv1 is the ImageNet kernel summed over R, G, B, so a grey image gives exactly the
    conv1 response the ImageNet network gives to that image repeated on three channels. ``in_channels=3`` keeps it.

    Stem ``"torchvision"`` (default) uses the 7×7 kernel as is. Stem ``"paper"`` (3×3, stride 1) cannot hold a 7×7
    kernel: we take its central 3×3 window (an approximation of the pretrained first layer — the other layers are
    exact). fc is dropped (forward gives the 512-d features). Inputs as the caller's pipeline feeds them: this
    project feeds [0, 1] grey images, with no ImageNet mean/std normalisation.
    Raises `SourceError` naming the file and where to put it when it is absent.
    """
    _stem_spec(stem)
    if in_channels not in (1, 3):
        raise ConfigError(f"ImageNet init supports in_channels 1 (RGB summed) or 3, not {in_channels}")
    path = Path(weights_path) if weights_path is not None else imagenet_weights_path()
    if path.is_dir():
        path = path / IMAGENET_FILE
    if not path.is_file():
        raise SourceError(
            f"ImageNet weights not found at {path}: download torchvision's {IMAGENET_FILE} ({IMAGENET_URL}) "
            f"and put it at {imagenet_weights_path()} or pass its path"
        )
    state = _torch_load(path, "cpu", "ImageNet weights file")
    conv1 = state.get("conv1.weight") if isinstance(state, dict) else None
    if not isinstance(conv1, torch.Tensor) or tuple(conv1.shape) != (64, 3, 7, 7):
        raise SourceError(f"{path} is not torchvision's ResNet-18 ImageNet state dict (conv1 must be 64×3×7×7)")
    weight = conv1.sum(dim=1, keepdim=True) if in_channels == 1 else conv1
    if stem == "paper":
        weight = weight[:, :, 2:5, 2:5]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    state["conv1.weight"] = weight.contiguous()
    net = build_encoder(stem, in_channels)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError:
        raise SourceError(f"{path} is not torchvision's ResNet-18 ImageNet state dict (names differ)") from None
    return net

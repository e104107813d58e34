"""The pretraining configuration: paper defaults, every one overridable, saved as `config.json`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

METHODS = ("mulsupcon", "supcon", "simclr", "ce")
DEFAULT_TEMPERATURE = {"mulsupcon": 0.07, "supcon": 0.07, "simclr": 0.1, "ce": None}
# Keys that may differ between a run and its resumption (they do not change the result).
RESUMABLE_KEYS = frozenset(
    {"epochs", "resume", "device", "workers", "cache_dir", "checkpoint_every", "compile", "max_decode_failures"}
)
# share of the bank's images that may fail to decode before a run stops (they are listed in decode_failures.csv)
DEFAULT_MAX_DECODE_FAILURES = 0.01


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run (section 4.3 and Table 2 of the paper).

    Units: `lr` per step at the reference batch size, `image_size` in pixels, epochs over the bank.
    """

    index: str
    out: str
    method: str = "mulsupcon"
    epochs: int = 1000
    batch_size: int = 256
    image_size: int = 224
    lr: float | None = None  # SGD 0.05 (contrastive); Adam 1e-3 (ce, "Adam (default)")
    optimizer: str | None = None  # sgd (contrastive) | adam (ce)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    temperature: float | None = None  # 0.07; 0.1 for simclr
    threshold: float = 0.3
    schedule: str = "cosine"  # cosine (warm-up then cosine) | step (authors: x0.1 at 70/80/90 %) | constant
    warmup_epochs: int = 10
    stem: str = "paper"  # paper: 3x3 stride 1; torchvision: 7x7 stride 2 (what the authors ran)
    head: str = "mlp"  # mlp: 512-512-128 projector; fc1000: the authors' loss on a 1000-d fc output
    crop_scale: tuple[float, float] = (0.2, 1.0)  # paper; the authors' code used (0.08, 1.0)
    profile: str = "radimagenet"
    label_axes: tuple[str, ...] = ("modality", "anatomy")
    root: str | None = None  # folder the index paths start from (default: the index's source)
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    cache_dir: str | None = None
    resume: bool = False
    checkpoint_every: int = 10
    amp: bool | None = None  # bf16 autocast; default on CUDA only
    channels_last: bool | None = None  # default on CUDA only
    compile: bool = False
    max_decode_failures: float = DEFAULT_MAX_DECODE_FAILURES  # share in [0, 1]; more stops the run
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> PretrainConfig:
        """A copy with method-dependent defaults filled in, validated."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown method '{self.method}' (choose from {', '.join(METHODS)})")
        if self.stem not in ("paper", "torchvision"):
            raise ConfigError(f"unknown stem '{self.stem}' (paper or torchvision)")
        if self.head not in ("mlp", "fc1000"):
            raise ConfigError(f"unknown head '{self.head}' (mlp or fc1000)")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ConfigError(f"unknown schedule '{self.schedule}' (cosine, step or constant)")
        for name, least in (("epochs", 1), ("batch_size", 1), ("image_size", 8), ("checkpoint_every", 1),
                            ("warmup_epochs", 0), ("workers", 0)):
            if getattr(self, name) < least:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {least}")
        for name in ("lr", "temperature"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"--{name} must be positive")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError("--momentum must lie in [0, 1)")
        if not self.weight_decay >= 0.0:
            raise ConfigError("--weight-decay must not be negative")
        from .data.targets import LABEL_AXES  # numpy and pandas, no torch

        if not self.label_axes or set(self.label_axes) - set(LABEL_AXES):
            raise ConfigError(f"--label-axes must be a comma list of {', '.join(LABEL_AXES)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError("--threshold must lie in [0, 1]")
        if not 0.0 <= self.max_decode_failures <= 1.0:
            raise ConfigError("--max-decode-failures must lie in [0, 1] (a share of the images)")
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError("--crop-scale must be two numbers 0 < low <= high <= 1")
        optimizer = self.optimizer or ("adam" if self.method == "ce" else "sgd")
        if optimizer not in ("sgd", "adam"):
            raise ConfigError(f"unknown optimizer '{optimizer}' (sgd or adam)")
        lr = self.lr if self.lr is not None else (1e-3 if optimizer == "adam" else 0.05)
        temperature = self.temperature if self.temperature is not None else DEFAULT_TEMPERATURE[self.method]
        return dataclasses.replace(
            self,
            optimizer=optimizer,
            lr=lr,
            temperature=temperature,
            crop_scale=(float(low), float(high)),
            label_axes=tuple(self.label_axes),
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["crop_scale"] = list(self.crop_scale)
        data["label_axes"] = list(self.label_axes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PretrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        values = dict(data)
        if "crop_scale" in values:
            values["crop_scale"] = tuple(values["crop_scale"])
        if "label_axes" in values:
            values["label_axes"] = tuple(values["label_axes"])
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> PretrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc


def differing_keys(saved: PretrainConfig, requested: PretrainConfig) -> list[str]:
    """Keys whose values differ between two resolved configurations, ignoring `RESUMABLE_KEYS`."""
    a, b = saved.to_dict(), requested.to_dict()
    return sorted(k for k in a if k not in RESUMABLE_KEYS and a[k] != b.get(k))


def check_run_folder(config: PretrainConfig) -> None:
    """Check what a run needs before any work (no torch): the index exists and is a modan-dicom index,
    and `config.out` is new, empty or a previous run: continued with `resume`, else refused.

    Raises SourceError (index), OutputError (a folder of the user's), ConfigError (run state)."""
    from .ingest.schema import read_index_meta
    from .outputs import run_folder

    read_index_meta(config.index)  # SourceError: missing, or not an index
    out = Path(config.out)
    run_folder(out)
    last = out / "checkpoints" / "last.pt"
    if last.exists() and not config.resume:
        raise ConfigError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    if config.resume and not last.exists():
        raise ConfigError(f"nothing to resume: {last} does not exist")

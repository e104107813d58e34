"""Penultimate-layer features of an index's images for several encoders, in one Parquet file.

The input of `modan-dicom visualize` (the paper's Figure 2): the pretraining images themselves, encoded by
each initialisation. The images are decoded once (the MONAI-cached uint8 bank pretraining uses) and every
encoder runs on that same bank, fed float [0, 1] grey images at `image_size`, exactly as in pretraining.

The file is long ("tidy"): one row per (image, encoder), encoder-major, images in index order::

    file_key    string   the index's row key (the join key back to index.parquet; never a path)
    instance_key string  the index's SOP Instance pseudonym
    patient_key string   the index's pseudonym
    modality    string   projected to the profile ("CT")
    anatomy     string   projected to the profile ("lung")
    pair        string   "CT/lung"
    encoder     string   the name given to the encoder ("mulsupcon", "scratch", ...)
    features    fixed_size_list<float32>[512]

Long rather than wide (one column per encoder) so that any number of encoders, and any pandas
``groupby("encoder")``, work without schema changes. The file holds no path or header text, so it can be
shared as the index can. The Parquet schema metadata key
``modan_dicom_embeddings`` holds JSON: format, the index's file name, profile, image size, seed, limit, and for every
encoder (in file order) its name, spec and the encoder file's metadata.

Encoder specs (`parse_init`): a path to an encoder file (`modan_dicom.models.load_encoder`), ``scratch``
(random init, ``build_encoder(stem)`` after ``torch.manual_seed(seed)``; ``scratch:N`` uses seed N), or
``imagenet`` (`modan_dicom.models.imagenet_encoder`, RGB conv1 kernels summed; the torchvision stem keeps
the pretrained 7×7 kernel exactly).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from ..atomic import atomic_path
from ..config import DEFAULT_MAX_DECODE_FAILURES
from ..devices import resolve_device
from ..errors import ConfigError, DatasetError, SourceError
from ..ingest.schema import resolve_index_root
from ..outputs import EMBEDDINGS_KEY, embeddings_output
from .options import builtin_init as _builtin, parse_init, parse_inits  # noqa: F401 - re-exported

EMBEDDINGS_FORMAT = "modan-dicom-embeddings"
EMBEDDINGS_VERSION = 1
META_KEY = EMBEDDINGS_KEY
BUILTIN_INITS = ("scratch", "imagenet")
LABEL_COLUMNS = ("file_key", "instance_key", "patient_key", "modality", "anatomy", "pair", "encoder")

Progress = Callable[[int, "int | None"], None]


# ---- small helpers ---------------------------------------------------------------------------------


class _RepeatGrey(nn.Module):
    """Feeds a (B, 1, S, S) grey batch to an encoder whose conv1 expects `channels` channels."""

    def __init__(self, encoder: nn.Module, channels: int) -> None:
        super().__init__()
        self.encoder, self.channels = encoder, channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.expand(-1, self.channels, -1, -1))


def load_init(
    spec: str,
    *,
    seed: int = 0,
    stem: str = "paper",
    imagenet_weights: str | os.PathLike[str] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the encoder an ``--init`` spec names, on the CPU, and what to record about it.

    Returns the encoder (forward: ``(B, 1, S, S)`` float in [0, 1] → ``(B, 512)``; a 3-channel encoder file
    gets the grey channel repeated) and a JSON-like metadata dict.
    Raises `SourceError` for a missing or foreign encoder file or absent ImageNet weights.
    """
    from ..models import build_encoder, imagenet_encoder, load_encoder_with_metadata

    builtin = _builtin(spec)
    if builtin is not None and builtin[0] == "scratch":
        scratch_seed = seed if builtin[1] is None else builtin[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(scratch_seed)
            encoder = build_encoder(stem)
        return encoder, {"kind": "scratch", "seed": scratch_seed, "stem": stem}
    if builtin is not None:
        encoder = imagenet_encoder("torchvision", imagenet_weights)
        return encoder, {"kind": "imagenet", "stem": "torchvision"}
    encoder, meta = load_encoder_with_metadata(spec, map_location="cpu")
    if meta["in_channels"] != 1:
        encoder = _RepeatGrey(encoder, int(meta["in_channels"]))
    return encoder, {"kind": "file", "path": str(Path(spec).resolve()), **meta}


def usable_rows(index: pd.DataFrame, vocab: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """Rows pretraining would use (`modan_dicom.data.targets`): usable status and both labels in the profile.

    Returns:
        rows: (N,) positions into ``index``, in index order.
        modality, anatomy: (N,) the labels projected to ``vocab``'s profile.
    """
    from ..data.targets import USABLE_STATUSES

    if len(index) == 0 or "status" not in index:
        raise DatasetError("the index has no rows")
    rows, modalities, anatomies = [], [], []
    usable = index["status"].isin(USABLE_STATUSES).to_numpy()
    for i, (raw_modality, raw_anatomy) in enumerate(zip(index["modality"], index["anatomy"])):
        if not usable[i]:
            continue
        modality = vocab.project_modality(raw_modality) if isinstance(raw_modality, str) and raw_modality else None
        anatomy = vocab.project_anatomy(raw_anatomy) if isinstance(raw_anatomy, str) and raw_anatomy else None
        if modality is not None and anatomy is not None:
            rows.append(i)
            modalities.append(modality)
            anatomies.append(anatomy)
    if not rows:
        raise DatasetError(
            f"no usable rows: the index has {len(index)} rows but none with a usable status and both a modality "
            f"and an anatomy in profile '{vocab.profile}'"
        )
    return np.asarray(rows, dtype=np.int64), modalities, anatomies


def stratified_sample(groups: Iterable[str], limit: int, seed: int = 0) -> np.ndarray:
    """At most ``limit`` positions, stratified by group, drawn with ``seed``; sorted ascending.

    Each group gets a share proportional to its size (largest remainders round up), but at least one
    sample while ``limit`` allows one per group (smallest groups' guarantee goes first to the largest groups
    when it does not). Shapes: groups (N,) → (min(limit, N),) int64.
    """
    labels = np.asarray(list(groups), dtype=object)
    n = len(labels)
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, not {limit}")
    if limit >= n:
        return np.arange(n, dtype=np.int64)
    names, inverse, counts = np.unique(labels.astype(str), return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")  # largest groups first
    quota = np.zeros(len(names), dtype=np.int64)
    floor_one = min(limit, len(names))
    quota[order[:floor_one]] = 1
    remaining = limit - floor_one
    if remaining > 0:
        room = counts - quota
        ideal = room / room.sum() * remaining
        extra = np.floor(ideal).astype(np.int64)
        leftover = remaining - int(extra.sum())
        remainder_order = np.lexsort((np.arange(len(names)), -(ideal - extra)))
        extra[remainder_order[:leftover]] += 1
        quota += np.minimum(extra, room)
    rng = np.random.default_rng(seed)
    chosen = []
    for g in range(len(names)):
        members = np.flatnonzero(inverse == g)
        chosen.append(rng.choice(members, size=int(quota[g]), replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# ---- the run ---------------------------------------------------------------------------------------


def embed(
    index: str | os.PathLike[str],
    encoders: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    image_size: int = 224,
    profile: str = "radimagenet",
    root: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 2,
    imagenet_weights: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    stem: str = "paper",
    max_decode_failures: float = DEFAULT_MAX_DECODE_FAILURES,
    progress: Progress | None = None,
) -> Path:
    """Write the penultimate-layer features of an index's usable images for every encoder to ``out``.

    Args:
        index: index.parquet (`modan-dicom index`).
        encoders: {name: spec}: an encoder file path, ``scratch`` / ``scratch:N`` or ``imagenet``.
            Names are kept in the given order (the panel order of `visualize`).
        out: the Parquet file to write (atomically); columns in the module docstring.
        image_size: side S of the square images fed to the encoders (pretraining's image size).
        profile: vocabulary profile the labels are projected to (and whose rows are usable).
        root: folder of the index's relative paths (default: the indexed source).
        batch_size: images encoded between two progress calls (the forward batches are `encode_images`'s:
            8 images on a CPU, 256 on a GPU).
        limit: keep at most this many images, stratified by modality/anatomy pair, drawn with ``seed``.
        seed: the ``limit`` sample and the ``scratch`` init.
        stem: the stem of ``scratch`` encoders (encoder files carry their own).
        max_decode_failures: share of the images that may fail to decode; they are left out and listed
            in ``<out stem>.decode_failures.csv`` beside ``out`` (index row, keys, reason).
        progress: ``(done, total)`` images decoded then encoded, over ``N × (1 + len(encoders))``.
    Returns:
        ``out``: ``N × len(encoders)`` rows, 512-d float32 features each.
    Raises:
        SourceError: missing index or encoder file, a file that is not an encoder, absent ImageNet weights.
        ConfigError: no encoders, a bad name or spec, device or limit.
        DatasetError: no usable rows; `UndecodableError` when more than ``max_decode_failures`` of the
            images cannot be decoded.
    """
    from ..data.bank import build_bank, check_failures, write_failures
    from ..data.targets import Targets
    from ..ingest import read_index
    from ..vocab import Vocabulary
    from .features import encode_images

    if not encoders:
        raise ConfigError("give at least one encoder (NAME=encoder.pt, scratch or imagenet)")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, not {limit}")
    index = Path(index)
    if not index.is_file():
        raise SourceError(f"{index}: no such index")
    if Path(out).resolve() == index.resolve():
        raise ConfigError(f"{out}: the output would overwrite the index")
    embeddings_output(out)  # a file we did not write is never replaced
    chosen_device = resolve_device(device)

    # every encoder is built before any image is decoded: a bad spec fails in a second, not after decoding
    built: dict[str, tuple[nn.Module, dict[str, Any]]] = {}
    for name, spec in encoders.items():
        if not str(name).strip() or "=" in str(name):
            raise ConfigError(f"bad encoder name {name!r}")
        built[str(name)] = load_init(str(spec), seed=seed, stem=stem, imagenet_weights=imagenet_weights)

    frame = read_index(index)
    vocab = Vocabulary.load(profile)
    rows, modalities, anatomies = usable_rows(frame, vocab)
    pairs = [f"{m}/{a}" for m, a in zip(modalities, anatomies)]
    if limit is not None:
        keep = stratified_sample(pairs, limit, seed)
        rows = rows[keep]
        modalities, anatomies, pairs = ([values[k] for k in keep] for values in (modalities, anatomies, pairs))
    n, n_encoders = len(rows), len(built)
    total = n * (1 + n_encoders)

    # build_bank needs Targets; the pair is the class (the multi-hot is unused here)
    class_names, classes = np.unique(np.asarray(pairs, dtype=str), return_inverse=True)
    targets = Targets(rows, np.zeros((n, 0), np.float32), [], classes.astype(np.int64), [str(c) for c in class_names])
    on_decode = (lambda done, _total: progress(done, total)) if progress is not None else None
    bank = build_bank(frame, targets, resolve_index_root(index, root), image_size, device=chosen_device,
                      cache_dir=cache_dir, workers=workers, progress=on_decode)
    if bank.failures:
        listed = Path(out).with_name(Path(out).stem + ".decode_failures.csv")
        write_failures(listed, frame, bank.failures)
        check_failures(len(bank.failures), n, max_decode_failures, listed)
        decoded = np.isin(rows, bank.rows)
        rows = rows[decoded]
        modalities, anatomies, pairs = (
            [v for v, ok in zip(values, decoded) if ok] for values in (modalities, anatomies, pairs)
        )
        n_all, n = n, len(rows)
        total = n_all + n * n_encoders

    features: dict[str, np.ndarray] = {}
    done = total - n * n_encoders
    for name, (encoder, _meta) in built.items():
        encoder.to(chosen_device)
        chunks = []
        for start in range(0, n, batch_size):
            chunks.append(encode_images(encoder, bank.images[start : start + batch_size], device=chosen_device))
            done += min(batch_size, n - start)
            if progress is not None:
                progress(done, total)
        encoder.to("cpu")
        features[name] = torch.cat(chunks).numpy().astype(np.float32, copy=False)

    subset = frame.iloc[rows]
    labels = {
        "file_key": subset["file_key"].astype(str).tolist(),
        "instance_key": subset["instance_key"].tolist() if "instance_key" in subset else [None] * n,
        "patient_key": subset["patient_key"].tolist() if "patient_key" in subset else [None] * n,
        "modality": modalities,
        "anatomy": anatomies,
        "pair": pairs,
    }
    meta = {
        "format": EMBEDDINGS_FORMAT,
        "version": EMBEDDINGS_VERSION,
        "index": index.name,  # not its folder: the file is shareable
        "profile": vocab.profile,
        "image_size": int(image_size),
        "seed": int(seed),
        "limit": limit,
        "n_images": int(n),
        "n_undecodable": len(bank.failures),
        "encoders": [{**meta, "name": name, "spec": str(encoders[name])} for name, (_, meta) in built.items()],
    }
    table = _embeddings_table(labels, features, meta)
    with atomic_path(out, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return Path(out)


def _embeddings_table(labels: Mapping[str, list], features: Mapping[str, np.ndarray], meta: dict) -> pa.Table:
    """The long table: the label columns repeated per encoder, encoder-major; features (N·E, D)."""
    dims = {array.shape[1] for array in features.values()}
    if len(dims) != 1:
        raise ConfigError(f"the encoders give features of different sizes ({sorted(dims)}): embed them separately")
    dim = dims.pop()
    n = len(labels["file_key"])
    columns = {key: pa.array(values * len(features), type=pa.string()) for key, values in labels.items()}
    columns["encoder"] = pa.array([name for name in features for _ in range(n)], type=pa.string())
    flat = np.concatenate([array.reshape(-1) for array in features.values()]).astype(np.float32)
    columns["features"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), dim)
    table = pa.table(columns)
    meta = {**meta, "feature_dim": int(dim)}
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})


# ---- reading it back --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    """An embeddings file in memory.

    Attributes:
        frame: the label columns (file_key, instance_key, patient_key, modality, anatomy, pair, encoder), (M rows).
        features: (M, D) float32, row i belongs to ``frame.iloc[i]``.
        encoders: encoder names in file order.
        meta: the file's metadata (index, profile, image_size, encoders' specs ...).
    """

    frame: pd.DataFrame
    features: np.ndarray
    encoders: list[str]
    meta: dict[str, Any]

    def of(self, encoder: str) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows (index reset) and (N, D) features of one encoder."""
        if encoder not in self.encoders:
            raise ConfigError(f"no encoder '{encoder}' in the embeddings (it has {', '.join(self.encoders)})")
        mask = (self.frame["encoder"] == encoder).to_numpy()
        return self.frame[mask].reset_index(drop=True), self.features[mask]


def read_embeddings_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an embeddings file (index, profile, image_size, n_images, feature_dim, encoders ...)."""
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such embeddings file") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise SourceError(f"{path}: not a modan-dicom embeddings file (write one with `modan-dicom embed`)")
    return json.loads(raw)


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Read a file written by `embed`. Raises `SourceError` when it is missing or not an embeddings file."""
    meta = read_embeddings_meta(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in (*LABEL_COLUMNS, "features") if c not in table.column_names]
    column = table.column("features").combine_chunks() if "features" in table.column_names else None
    if missing or column is None or not pa.types.is_fixed_size_list(column.type):
        raise SourceError(f"{path}: not a modan-dicom embeddings file (columns or feature type differ)")
    dim = column.type.list_size
    features = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    frame = table.select(list(LABEL_COLUMNS)).replace_schema_metadata(None).to_pandas()
    encoders = list(dict.fromkeys(frame["encoder"]))
    return Embeddings(frame, features, encoders, meta)

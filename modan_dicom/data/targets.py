"""Training targets from an index: the multi-hot of the chosen profile, extra label axes, classes.

The index stores the most specific `modality` and `anatomy` of every row, so a run may train with a
profile other than the one the index was built with: targets are re-projected here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, DatasetError
from ..vocab import Vocabulary

LABEL_AXES = ("modality", "anatomy", "laterality", "manufacturer")
USABLE_STATUSES = ("ok", "unmapped")


@dataclass(frozen=True)
class Targets:
    """Labels of the usable rows of an index.

    Attributes:
        rows: positions (into the index frame) of the usable rows, (N,).
        multi_hot: (N, K) float32, 1 where an axis is active.
        axes: the K axis names ("CT", "knee", "laterality:L", "manufacturer:siemens", ...).
        classes: (N,) int64 single-label class per row (for SupCon and cross-entropy).
        class_names: the class names, `class_names[classes[i]]`.
    """

    rows: np.ndarray
    multi_hot: np.ndarray
    axes: list[str]
    classes: np.ndarray
    class_names: list[str]

    def shard(self, rank: int, world_size: int) -> Targets:
        """Every `world_size`-th sample from `rank`: one data-parallel rank's share (axes and classes kept)."""
        take = slice(rank, None, world_size)
        return Targets(self.rows[take], self.multi_hot[take], self.axes, self.classes[take], self.class_names)


def _normalise_laterality(value: object) -> str | None:
    text = str(value).strip().upper() if isinstance(value, str) else ""
    return {"L": "L", "R": "R", "B": "B", "LEFT": "L", "RIGHT": "R", "BOTH": "B"}.get(text)


def _normalise_manufacturer(value: object) -> str | None:
    words = re.findall(r"[a-z0-9]+", value.lower()) if isinstance(value, str) else []
    return words[0] if words else None


def _one_hot_axis(values: list[str | None], prefix: str) -> tuple[np.ndarray, list[str]]:
    names = sorted({v for v in values if v is not None})
    matrix = np.zeros((len(values), len(names)), dtype=np.float32)
    position = {name: i for i, name in enumerate(names)}
    for row, value in enumerate(values):
        if value is not None:
            matrix[row, position[value]] = 1.0
    return matrix, [f"{prefix}:{name}" for name in names]


def build_targets(
    index: pd.DataFrame,
    vocab: Vocabulary,
    label_axes: Sequence[str] = ("modality", "anatomy"),
    class_column: str | None = None,
) -> Targets:
    """Select the usable rows of `index` and build their targets under `vocab`'s profile.

    Args:
        index: an index frame (`modan_dicom.read_index`), with `status`, `modality`, `anatomy`.
        vocab: the vocabulary whose profile defines the modality / anatomy axes.
        label_axes: which kinds of axes the multi-hot holds (subset of `LABEL_AXES`; the paper's is
            modality + anatomy; laterality and manufacturer are the paper's future work).
        class_column: column holding the single-label class (e.g. RadImageNet's 165-class `label`);
            default: that column when every usable row has it, else the modality+anatomy pair.
    Raises:
        ConfigError: unknown label axis.
        DatasetError: no usable rows, or labels identical for every sample (nothing to contrast).
    """
    unknown = sorted(set(label_axes) - set(LABEL_AXES))
    if unknown:
        raise ConfigError(f"unknown label axes {', '.join(unknown)} (choose from {', '.join(LABEL_AXES)})")
    if not {"modality", "anatomy"} & set(label_axes):
        raise ConfigError("label axes must include modality or anatomy")
    if len(index) == 0 or "status" not in index:
        raise DatasetError("the index has no rows")

    candidates = index["status"].isin(USABLE_STATUSES).to_numpy()
    modality = [vocab.project_modality(m) if isinstance(m, str) and m else None for m in index["modality"]]
    anatomy = [vocab.project_anatomy(a, m if isinstance(m, str) and m else None) if isinstance(a, str) and a else None
               for a, m in zip(index["anatomy"], index["modality"])]  # with the modality: US has no heart
    complete = np.array([m is not None and a is not None for m, a in zip(modality, anatomy)])
    rows = np.flatnonzero(candidates & complete)
    if rows.size == 0:
        raise DatasetError(
            f"no usable rows: the index has {len(index)} rows but none with status ok and both a modality "
            f"and an anatomy in profile '{vocab.profile}'"
        )

    encoded = np.stack([vocab.encode(index["modality"].iat[i], index["anatomy"].iat[i]) for i in rows])
    modality_axes = set(vocab.modality_labels)
    keep = [
        j
        for j, axis in enumerate(vocab.labels)
        if ("modality" in label_axes and axis in modality_axes)
        or ("anatomy" in label_axes and axis not in modality_axes)
    ]
    blocks, axes = [encoded[:, keep].astype(np.float32)], [vocab.labels[j] for j in keep]
    subset = index.iloc[rows]
    for axis, column, normalise in (
        ("laterality", "Laterality", _normalise_laterality),
        ("manufacturer", "Manufacturer", _normalise_manufacturer),
    ):
        if axis in label_axes:
            raw = subset[column].tolist() if column in subset else [None] * len(subset)
            matrix, names = _one_hot_axis([normalise(v) for v in raw], axis)
            blocks.append(matrix)
            axes += names
    multi_hot = np.concatenate(blocks, axis=1)
    if len(rows) > 1 and np.all(multi_hot == multi_hot[:1]):
        raise DatasetError(
            f"profile '{vocab.profile}' with label axes {', '.join(label_axes)} gives every one of the "
            f"{len(rows)} samples the same label: nothing to contrast (use a richer profile or more data)"
        )

    if class_column is None and "label" in subset and subset["label"].notna().all():
        class_column = "label"
    if class_column is not None:
        if class_column not in subset:
            raise ConfigError(f"class column '{class_column}' is not in the index")
        raw_classes = subset[class_column].astype(str).to_numpy()
    else:
        raw_classes = np.array(["+".join(a for a, on in zip(axes, vec) if on) for vec in multi_hot])
    class_names, classes = np.unique(raw_classes, return_inverse=True)
    return Targets(rows, multi_hot, axes, classes.astype(np.int64), [str(c) for c in class_names])

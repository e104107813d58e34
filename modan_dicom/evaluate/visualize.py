"""The paper's Figure 2: UMAP of each encoder's penultimate-layer features, coloured by modality+anatomy.

One panel per encoder (a row of up to three, else a grid), a fixed colour per (modality, anatomy) pair shared
by every panel and one legend. The colours are nominal: `pair_colors` sorts the pairs and deals them a fixed
qualitative palette, so the same set of pairs always gets the same colours. UMAP axes carry no units, so the
panels have no ticks. Drawn with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import colorsys
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_path
from ..outputs import PNG_METADATA, figure_output
from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Color = tuple[float, float, float, float]


def _palette() -> list[Color]:
    """60 qualitative colours: tab20's ten dark then ten light shades, then tab20b and tab20c."""
    from matplotlib import colormaps

    tab20 = [tuple(float(v) for v in colormaps["tab20"](i)) for i in range(20)]
    colours = tab20[0::2] + tab20[1::2]
    for name in ("tab20b", "tab20c"):
        colours += [tuple(float(v) for v in colormaps[name](i)) for i in range(20)]
    return colours  # type: ignore[return-value]


def pair_colors(pairs: Iterable[str]) -> dict[str, Color]:
    """A fixed RGBA colour per distinct pair: the sorted pairs take the palette in order.

    Depends only on the set of pairs (not their order or counts). Beyond the 60 palette colours, hues
    step by the golden ratio (still deterministic).
    """
    palette = _palette()
    mapping: dict[str, Color] = {}
    for i, pair in enumerate(sorted({str(p) for p in pairs})):
        if i < len(palette):
            mapping[pair] = palette[i]
        else:
            hue = (i * 0.618033988749895) % 1.0
            mapping[pair] = (*colorsys.hsv_to_rgb(hue, 0.65, 0.85), 1.0)
    return mapping


# Up to this many points the neighbour graph is exact (brute force, O(N²·D)) and handed to UMAP; beyond it,
# UMAP's own approximate NN-descent. Exact is also much quicker to start: NN-descent's numba compilation
# costs more than the whole layout of a few thousand points.
EXACT_KNN_MAX = 50_000


def umap_coordinates(
    features: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """UMAP (umap-learn, ``random_state=seed``: deterministic, single-threaded) of (N, D) features → (N, 2).

    ``n_neighbors`` (the point itself included, as in UMAP) is capped at N − 1. Fewer than 3 points have no
    neighbourhood graph to lay out: they are placed on a line; 3 points use a random (seeded) start instead of
    the spectral one, which needs 4.
    """
    features = np.asarray(features, dtype=np.float32)
    n = features.shape[0]
    if n_neighbors < 2:
        raise ConfigError(f"n_neighbors must be at least 2, not {n_neighbors}")
    if n <= 2:
        return np.stack([np.arange(n, dtype=np.float32), np.zeros(n, dtype=np.float32)], axis=1)
    import umap

    k = min(n_neighbors, n - 1)
    knn: tuple = (None, None, None)
    if n <= EXACT_KNN_MAX:
        from sklearn.neighbors import NearestNeighbors

        distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(features).kneighbors(features)
        knn = (indices.astype(np.int64), distances.astype(np.float32), None)
    reducer = umap.UMAP(
        n_neighbors=k,
        min_dist=min_dist,
        n_components=2,
        random_state=seed,
        init="spectral" if n >= 4 else "random",
        precomputed_knn=knn,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", small-graph notes
        return np.asarray(reducer.fit_transform(features), dtype=np.float32)


def _grid(n_panels: int) -> tuple[int, int]:
    """(rows, columns): one row up to three panels, else a near-square grid."""
    if n_panels <= 3:
        return 1, max(1, n_panels)
    columns = math.ceil(math.sqrt(n_panels))
    return math.ceil(n_panels / columns), columns


def umap_figure(
    panels: Sequence[tuple[str, np.ndarray, Sequence[str]]],
    *,
    colors: dict[str, Color] | None = None,
    point_size: float | None = None,
    seed: int = 0,
    title: str | None = None,
) -> Figure:
    """Draw the panels and return the matplotlib Figure (Agg canvas).

    Args:
        panels: (name, coordinates (N, 2), pairs (N,)) per encoder, drawn left to right, top to bottom.
        colors: pair → colour; default `pair_colors` of every pair in every panel (one mapping for all).
        point_size: marker area in points²; default shrinks with N (20 for a few hundred points, ≥ 1).
        seed: the drawing order of the points (shuffled, so no pair is always drawn on top).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not panels:
        raise ConfigError("nothing to draw: no encoders")
    colors = colors or pair_colors(p for _, _, pairs in panels for p in pairs)
    rows, columns = _grid(len(panels))
    figure = Figure(figsize=(3.4 * columns + 2.2, 3.4 * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    rng = np.random.default_rng(seed)
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_axis_off()
            continue
        name, coordinates, pairs = panels[k]
        n = len(pairs)
        order = rng.permutation(n)
        size = point_size if point_size is not None else float(np.clip(6000.0 / max(n, 1), 1.0, 20.0))
        ax.scatter(
            coordinates[order, 0], coordinates[order, 1], s=size, linewidths=0,
            c=[colors[pairs[i]] for i in order] if n else [], alpha=0.85,
        )
        ax.set_title(name, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
        for spine in ax.spines.values():
            spine.set_color("0.75")
    handles = [Line2D([], [], linestyle="", marker="o", markersize=6, color=colors[p], label=p) for p in colors]
    figure.legend(handles=handles, loc="outside right center", title="modality/anatomy", fontsize=8,
                  title_fontsize=9, frameon=False, ncols=math.ceil(len(handles) / (18 * rows)))
    if title:
        figure.suptitle(title, fontsize=9, color="0.3")
    return figure


def visualize(
    embeddings_parquet: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    encoders: Sequence[str] | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    point_size: float | None = None,
    dpi: int = 150,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """UMAP of every (or the chosen) encoder's features in an `embed` file, one panel each, to a PNG.

    Args:
        embeddings_parquet: written by `modan_dicom.evaluate.embed.embed`.
        out_png: the PNG to write (atomically).
        encoders: panel order; default every encoder in file order.
        n_neighbors, min_dist: UMAP's parameters (``n_neighbors`` capped at N − 1).
        seed: UMAP's ``random_state`` (and the drawing order).
        progress: ``(panels done, panels)``.
    Raises:
        SourceError: missing or foreign embeddings file.  ConfigError: an unknown encoder name.
    """
    from .embed import read_embeddings

    data = read_embeddings(embeddings_parquet)
    figure_output(out_png)  # a file we did not write is never replaced
    names = list(encoders) if encoders else data.encoders
    if not names:
        raise ConfigError(f"{embeddings_parquet}: holds no encoders")
    colors = pair_colors(data.frame["pair"])  # over the whole file: one mapping whichever panels are drawn
    panels = []
    for k, name in enumerate(names):
        rows, features = data.of(name)
        coordinates = umap_coordinates(features, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
        panels.append((name, coordinates, rows["pair"].tolist()))
        if progress is not None:
            progress(k + 1, len(names))
    n_images = len(panels[0][2])
    title = (f"UMAP of penultimate-layer features: {n_images} images, "
             f"n_neighbors={n_neighbors}, min_dist={min_dist}, seed={seed}")
    figure = umap_figure(panels, colors=colors, point_size=point_size, seed=seed, title=title)
    with atomic_path(out_png, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, metadata=PNG_METADATA)
    return Path(out_png)

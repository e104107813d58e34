"""The benchmark report: paper-style tables, fold-level comparison, AUC intervals and ROC curves.

`write_report(runs, out_dir, reference=...)` reads a runs table (``task, init, mode, repeat, fold,
auc``) and, when given, the per-image test predictions (``task, init, mode, repeat, fold, id, group,
label, score``), and writes into `out_dir`:

- ``summary.csv``   one row per (task, mode, init): mean_auc, sd_auc, sd_folds, p_value, n_repeats …
- ``summary.md``    Tables 4 / 5 of the paper (one per mode), then the fold-level comparison and the
                    confidence intervals, and how each number was computed;
- ``folds.csv``     the (repeat, fold)-paired comparison of every init with the reference;
- ``ci.csv``        (with predictions) the pooled AUC of every (task, mode, init) with DeLong and
                    group-bootstrap intervals;
- ``roc_<task>.png`` (with predictions) one panel per mode, one mean ROC curve per init.

Pooling of predictions: within a repeat the 5 test folds partition the cases, so their union scores
every case once; its AUC is the repeat's *pooled* AUC (it differs slightly from the mean of the fold
AUCs, which the tables use). The reported AUC is the mean over repeats of the pooled AUC; because all
repeats score the same cases, its interval must reflect case sampling with the repeats kept paired:
DeLong's variance of the mean of the R AUCs (averaged structural components) and a bootstrap that
resamples groups (exams / cases) once per replicate for all repeats. The ROC curve is the vertical
mean over repeats of the pooled curves.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_open, atomic_path, write_text
from ..errors import DatasetError, SourceError
from ..outputs import PNG_METADATA, REPORT_TITLE, report_folder
from .stats import (
    Alternative,
    check_alternative,
    bootstrap_auc_ci,
    check_reference,
    delong_auc_ci,
    fold_level_comparison,
    order_modes,
    summary_table,
    validate_runs,
)

PREDICTION_COLUMNS = ("task", "init", "mode", "repeat", "fold", "id", "group", "label", "score")
MODE_TITLES = {"finetune": "Fine-tuning (the shape of the paper's Table 4)",
               "linear": "Linear probing (the shape of the paper's Table 5)"}
ALPHA_BOLD = 0.05
SMOKE_REPEATS = 5  # fewer repeats than this, or tasks smaller than SMOKE_IMAGES: the report says it is a smoke test
SMOKE_IMAGES = 100


@dataclass(frozen=True)
class Cell:
    """One table cell: its text and whether the paper would set it in bold."""

    text: str
    bold: bool = False


@dataclass(frozen=True)
class PaperTable:
    """One mode's table: rows = inits (reference first), columns = per task AUC and p-value."""

    mode: str
    title: str
    header: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class ReportPaths:
    """What `write_report` wrote (paths) and the tables it computed (for the CLI to render)."""

    out_dir: Path
    summary_csv: Path
    summary_md: Path
    folds_csv: Path
    ci_csv: Path | None
    roc_png: tuple[Path, ...]
    summary: pd.DataFrame = field(repr=False)
    tables: list[PaperTable] = field(repr=False)
    ci: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def files(self) -> list[Path]:
        """Every file written, in a stable order."""
        extra = ([self.ci_csv] if self.ci_csv else []) + list(self.roc_png)
        return [self.summary_csv, self.summary_md, self.folds_csv, *extra]


# ---- inputs -----------------------------------------------------------------------------------


def read_runs(runs: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """A runs table from a CSV path or a frame, validated (`DatasetError` / `SourceError`, one line)."""
    if isinstance(runs, pd.DataFrame):
        return validate_runs(runs)
    path = Path(runs)
    if not path.is_file():
        raise SourceError(f"{path}: no such runs file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({str(exc).splitlines()[0] if str(exc) else 'empty'})") from None
    try:
        return validate_runs(frame)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def read_predictions(predictions: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Per-image test predictions from Parquet (or CSV) or a frame, validated.

    A missing or empty ``group`` falls back to the image ``id`` (each image its own group).
    """
    if isinstance(predictions, pd.DataFrame):
        frame, name = predictions.copy(), "predictions"
    else:
        path = Path(predictions)
        if not path.is_file():
            raise SourceError(f"{path}: no such predictions file")
        try:
            frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise DatasetError(f"{path}: not a readable predictions file ({type(exc).__name__})") from None
        name = str(path)
    if "group" not in frame.columns and "id" in frame.columns:
        frame["group"] = frame["id"]
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{name} lacks column(s) {', '.join(missing)} (needs {', '.join(PREDICTION_COLUMNS)})")
    if len(frame) == 0:
        raise DatasetError(f"{name} has no rows")
    for column in ("task", "init", "mode"):
        frame[column] = frame[column].astype(str)
    frame["group"] = frame["group"].where(frame["group"].notna(), frame["id"])
    try:
        frame["score"] = pd.to_numeric(frame["score"]).astype(float)
        frame["label"] = pd.to_numeric(frame["label"]).astype(int)
    except (ValueError, TypeError):
        raise DatasetError(f"{name}: label and score must be numeric") from None
    if not frame["label"].isin((0, 1)).all():
        raise DatasetError(f"{name}: label must be 0 or 1")
    if frame.duplicated(["task", "init", "mode", "repeat", "id"]).any():
        raise DatasetError(f"{name}: an image is scored twice within one repeat (task, init, mode, repeat, id)")
    return frame


def default_predictions(runs_csv: str | os.PathLike[str]) -> Path | None:
    """``predictions.parquet`` beside a runs CSV, when it exists."""
    candidate = Path(runs_csv).parent / "predictions.parquet"
    return candidate if candidate.is_file() else None


# ---- paper-style tables -----------------------------------------------------------------------


def format_auc(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def format_p(value: float) -> str:
    """Three decimals; below 0.0005 as "<0.001"; NaN as "n/a"."""
    if not math.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.0005 else f"{value:.3f}"


def paper_tables(summary: pd.DataFrame, reference: str) -> list[PaperTable]:
    """The summary laid out as the paper's Tables 4 / 5: one table per mode.

    Rows are the inits (the reference first, as in `summary`), columns ``<task> AUC`` and
    ``<task> p`` per task. Bold: the best mean AUC of each task column (compared at the 3 printed
    decimals, so equal-looking values are both bold) and every p ≤ 0.05. The reference's p is "—".
    """
    tasks = list(dict.fromkeys(summary["task"]))
    tables = []
    for mode in order_modes(summary["mode"]):
        block = summary[summary["mode"] == mode]
        inits = list(dict.fromkeys(block["init"]))
        best = {}
        for task in tasks:
            values = block.loc[block["task"] == task, "mean_auc"].to_numpy(float)
            values = values[np.isfinite(values)]
            best[task] = round(float(values.max()), 3) if len(values) else None
        header = ["init"] + [f"{task} {what}" for task in tasks for what in ("AUC", "p")]
        rows = []
        for init in inits:
            row = [Cell(f"{init} (reference)" if init == reference else init)]
            for task in tasks:
                hit = block[(block["task"] == task) & (block["init"] == init)]
                if hit.empty:
                    row += [Cell(""), Cell("")]
                    continue
                auc, p = float(hit["mean_auc"].iloc[0]), float(hit["p_value"].iloc[0])
                row.append(Cell(format_auc(auc), math.isfinite(auc) and round(auc, 3) == best[task]))
                if init == reference:
                    row.append(Cell("—"))
                else:
                    row.append(Cell(format_p(p), math.isfinite(p) and p <= ALPHA_BOLD))
            rows.append(row)
        tables.append(PaperTable(mode, MODE_TITLES.get(mode, f"Mode {mode}"), header, rows))
    return tables


def smallest_p(n_pairs: int, alternative: str = "two-sided") -> float:
    """The smallest p an exact Wilcoxon signed-rank test can give on `n_pairs` pairs: every difference of
    one sign, probability 1/2^n under the null (doubled when two-sided)."""
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0 ** n_pairs)


def task_images(runs: pd.DataFrame, predictions: pd.DataFrame | None = None) -> dict[str, int]:
    """Images per task: the test images of one repeat (its folds partition the task), else the distinct
    predicted ids; {} when neither is known."""
    if "n_test" in runs and runs["n_test"].notna().all():
        per_repeat = runs.groupby(["task", "init", "mode", "repeat"])["n_test"].sum()
        return {str(task): int(n) for task, n in per_repeat.groupby(level="task").max().items()}
    if predictions is not None:
        return {str(task): int(ids.nunique()) for task, ids in predictions.groupby("task")["id"]}
    return {}


def caveats(n_repeats: int, images: dict[str, int], alternative: str = "two-sided") -> list[str]:
    """summary.md's warnings: a smoke test (fewer than `SMOKE_REPEATS` repeats, or a task of fewer than
    `SMOKE_IMAGES` images), and a Wilcoxon p that cannot reach `ALPHA_BOLD` with so few repeats."""
    notes = []
    small = sorted(task for task, n in images.items() if n < SMOKE_IMAGES)
    if n_repeats < SMOKE_REPEATS or small:
        why = []
        if n_repeats < SMOKE_REPEATS:
            why.append(f"{n_repeats} repeat{'s' if n_repeats != 1 else ''} (the paper: 10)")
        if small:
            why.append("tasks of " + ", ".join(f"{images[t]} images ({t})" for t in small))
        notes.append(f"**Smoke test, not a result**: {' and '.join(why)}. These AUCs show that the pipeline runs "
                     "end to end; they say nothing about how well an encoder transfers.")
    floor = smallest_p(n_repeats, alternative)
    if n_repeats < 2:
        notes.append("With 1 repeat there is no pair to test: every Wilcoxon p of the tables is n/a.")
    elif floor > ALPHA_BOLD:
        notes.append(f"With {n_repeats} repeats the smallest {alternative} Wilcoxon p is "
                     f"{'2' if alternative == 'two-sided' else '1'}/2^{n_repeats} = {floor:.3g}: no p-value of the "
                     f"tables (paired by repeat) can reach {ALPHA_BOLD} whatever the AUCs; more repeats are needed "
                     "for a test.")
    return notes


def _md_cell(cell: Cell) -> str:
    return f"**{cell.text}**" if cell.bold and cell.text else cell.text


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(tables: list[PaperTable], folds: pd.DataFrame, ci: pd.DataFrame | None, *, reference: str,
                    alternative: str, n_repeats: str, files: list[str], ci_settings: str,
                    notes: tuple[str, ...] | list[str] = ()) -> str:
    """summary.md: the paper tables first, then what lies beyond the paper, then the methods."""
    side = {"two-sided": "two-sided", "greater": "one-sided (H1: the reference is better)",
            "less": "one-sided (H1: the reference is worse)"}[alternative]
    parts = [
        REPORT_TITLE,
        "",
        f"Mean AUC over repeats (each repeat: the mean of its fold AUCs; {n_repeats}) and the p-value of the "
        f"Wilcoxon signed-rank test ({side}) against the reference **{reference}**, paired by repeat. "
        "Bold: the best AUC of each task, and p ≤ 0.05.",
    ]
    for note in notes:
        parts += ["", f"> {note}"]
    for table in tables:
        parts += ["", f"## {table.title}", "",
                  _md_table(table.header, [[_md_cell(c) for c in row] for row in table.rows])]
    parts += ["", "## Beyond the paper", "", "### Fold-level paired comparison", "",
              "Every (repeat, fold) cell of an init paired with the reference's same cell; difference = "
              f"reference − init; Wilcoxon signed-rank ({side}). Cells of one fold share their test images, "
              "so this p-value is descriptive (anti-conservative), not a replacement for the table above.", ""]
    if folds.empty:
        parts.append("(no init besides the reference)")
    else:
        rows = [[r.task, r.mode, r.init, str(r.n_pairs), f"{r.mean_diff:+.3f}" if math.isfinite(r.mean_diff) else "n/a",
                 f"{r.init_wins}/{r.n_pairs}", _md_cell(Cell(format_p(r.p_value), math.isfinite(r.p_value)
                                                             and r.p_value <= ALPHA_BOLD))]
                for r in folds.itertuples()]
        parts.append(_md_table(["task", "mode", "init", "cells", "mean diff", "init wins", "p"], rows,
                               ["---", "---", "---", "---:", "---:", "---:", "---:"]))
    if ci is not None and not ci.empty:
        parts += ["", "### Confidence intervals of the pooled AUC", "", ci_settings, ""]
        rows = []
        for r in ci.itertuples():
            delong = f"{r.delong_low:.3f}–{r.delong_high:.3f}" if math.isfinite(r.delong_low) else "n/a"
            boot = f"{r.boot_low:.3f}–{r.boot_high:.3f}" if math.isfinite(r.boot_low) else "n/a"
            rows.append([r.task, r.mode, r.init, format_auc(r.auc), delong, boot, str(r.n_repeats),
                         f"{r.n_images} / {r.n_groups}"])
        parts.append(_md_table(["task", "mode", "init", "pooled AUC", "DeLong CI", "bootstrap CI", "repeats",
                                "images / groups"], rows,
                               ["---", "---", "---", "---:", "---:", "---:", "---:", "---:"]))
    import scipy

    parts += ["", "## How the numbers were computed", "",
              "- Only complete repeats count (every fold of the task scored); repeats pair by their `repeat` value "
              "(shared seeds), and only repeats both inits completed enter a test.",
              "- p: `scipy.stats.wilcoxon(reference, init, zero_method='wilcox', method='auto', "
              f"alternative='{alternative}')` on the per-repeat mean AUCs (scipy {scipy.__version__}: exact null "
              "distribution for ≤ 50 pairs, exhaustive sign permutations for ≤ 13 pairs with ties or zeros). "
              "n/a: fewer than 2 pairs, or all differences zero.",
              "- summary.csv: `sd_auc` = SD (ddof 1) of the per-repeat means; `sd_folds` = mean over repeats of "
              "the SD over that repeat's folds.",
              "", "Files: " + ", ".join(f"`{f}`" for f in files), ""]
    return "\n".join(parts)


# ---- predictions: pooled AUC, intervals, ROC --------------------------------------------------


@dataclass(frozen=True)
class PooledScores:
    """The test predictions of one (task, mode, init) as a matrix: R repeats × N cases."""

    labels: np.ndarray      # (N,) 0/1
    groups: np.ndarray      # (N,) exam / case ids
    scores: np.ndarray      # (R, N)
    repeats: list
    note: str


def pooled_scores(block: pd.DataFrame) -> PooledScores:
    """Pivot one (task, mode, init)'s predictions to (repeats × images).

    Keeps the repeats that scored every image seen in any repeat (complete ones); when none is
    complete, keeps all repeats and the images every repeat scored, and says so in ``note``.
    """
    per_image = block.groupby("id", sort=True).agg(label=("label", "nunique"), group=("group", "first"))
    if (per_image["label"] > 1).any():
        raise DatasetError(f"predictions: image {per_image.index[per_image['label'] > 1][0]!r} has two labels")
    labels = block.groupby("id", sort=True)["label"].first()
    matrix = block.pivot(index="repeat", columns="id", values="score").sort_index()
    complete = matrix.notna().all(axis=1)
    note = ""
    if complete.any():
        if not complete.all():
            note = f"{int((~complete).sum())} incomplete repeat(s) left out"
        matrix = matrix[complete]
    else:
        matrix = matrix.loc[:, matrix.notna().all(axis=0)]
        note = "no repeat scored every image: images common to all repeats"
    ids = matrix.columns
    return PooledScores(labels.loc[ids].to_numpy(int), per_image.loc[ids, "group"].to_numpy(),
                        matrix.to_numpy(float), list(matrix.index), note)


def confidence_intervals(predictions: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                         alpha: float = 0.05) -> pd.DataFrame:
    """Per (task, mode, init): pooled AUC (mean over repeats) with DeLong and group-bootstrap intervals.

    Returns columns ``task, mode, init, auc, delong_se, delong_low, delong_high, boot_low, boot_high,
    n_boot_valid, n_repeats, n_images, n_groups, n_pos, n_neg, note``. Every (task, mode, init) of one
    task bootstraps with the same seed, so the inits are resampled identically.
    """
    rows = []
    for (task, mode, init), block in predictions.groupby(["task", "mode", "init"], sort=False):
        pooled = pooled_scores(block)
        y = pooled.labels
        row = {"task": task, "mode": mode, "init": init, "n_repeats": len(pooled.repeats), "n_images": len(y),
               "n_groups": len(set(pooled.groups)), "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum()),
               "note": pooled.note}
        if len(y) == 0 or y.all() or not y.any():
            row.update(auc=np.nan, delong_se=np.nan, delong_low=np.nan, delong_high=np.nan, boot_low=np.nan,
                       boot_high=np.nan, n_boot_valid=0,
                       note=(pooled.note + "; " if pooled.note else "") + "one class only: no AUC")
        else:
            delong = delong_auc_ci(y, pooled.scores, alpha=alpha)
            boot = bootstrap_auc_ci(y, pooled.scores, pooled.groups, n_boot=n_boot, seed=seed, alpha=alpha)
            row.update(auc=delong.auc, delong_se=delong.se, delong_low=delong.low, delong_high=delong.high,
                       boot_low=boot.low, boot_high=boot.high, n_boot_valid=boot.n_valid)
        rows.append(row)
    columns = ["task", "mode", "init", "auc", "delong_se", "delong_low", "delong_high", "boot_low", "boot_high",
               "n_boot_valid", "n_repeats", "n_images", "n_groups", "n_pos", "n_neg", "note"]
    return pd.DataFrame(rows, columns=columns)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The empirical ROC curve: (fpr, tpr), shape (K + 1,) each, from (0, 0) to (1, 1).

    One point per distinct score threshold, high to low; tied scores give a diagonal segment.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]     # last index of each tie block
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(1, (~y).sum())], np.r_[0.0, tp / max(1, y.sum())]


def mean_roc(labels: np.ndarray, scores: np.ndarray, grid: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Vertical average over R score vectors (R, N) of their ROC curves on `grid` FPR values."""
    fpr_grid = np.linspace(0.0, 1.0, grid)
    curves = []
    for row in np.atleast_2d(scores):
        fpr, tpr = roc_points(labels, row)
        # np.interp with repeated fpr values takes the top of a vertical step just right of it
        curve = np.interp(fpr_grid, fpr, tpr)
        curve[0] = 0.0
        curves.append(curve)
    return fpr_grid, np.mean(curves, axis=0)


def plot_roc(task: str, curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, str]]], path: Path,
             reference: str, init_order: list[str], subtitle: str = "") -> Path:
    """One PNG: a panel per mode, a mean ROC curve per init with its AUC in the legend (Agg, no pyplot).

    curves: mode → init → (fpr, tpr, legend text); subtitle: appended to each panel's title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    modes = order_modes(list(curves))
    fig = Figure(figsize=(4.3 * len(modes), 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    colour = {init: palette[k % len(palette)] for k, init in enumerate(init_order)}
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    for ax, mode in zip(axes, modes):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.7", linewidth=0.8)
        for init in [i for i in init_order if i in curves[mode]]:
            fpr, tpr, label = curves[mode][init]
            ax.plot(fpr, tpr, color=colour[init], linewidth=2.2 if init == reference else 1.4, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.005)
        ax.set_aspect("equal")
        ax.set_xlabel("1 − specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title(f"{task} · {mode}" + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
        ax.grid(alpha=0.25)
        ax.legend(loc="lower right", fontsize=8, title="init (pooled AUC)", title_fontsize=8)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.1, metadata=PNG_METADATA)
    return path


def roc_figures(predictions: pd.DataFrame, ci: pd.DataFrame, out_dir: Path, reference: str,
                init_order: list[str]) -> tuple[Path, ...]:
    """Write ``roc_<task>.png`` for every task in `predictions`; returns their paths."""
    auc = ci.set_index(["task", "mode", "init"])["auc"]
    paths = []
    for task, task_block in predictions.groupby("task", sort=True):
        curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, str]]] = {}
        repeats: set[int] = set()
        for (mode, init), block in task_block.groupby(["mode", "init"], sort=False):
            pooled = pooled_scores(block)
            repeats.add(len(pooled.repeats))
            if len(pooled.labels) == 0 or pooled.labels.all() or not pooled.labels.any():
                continue
            fpr, tpr = mean_roc(pooled.labels, pooled.scores)
            label = f"{init}{' (ref.)' if init == reference else ''}  {format_auc(float(auc[(task, mode, init)]))}"
            curves.setdefault(mode, {})[init] = (fpr, tpr, label)
        if curves:
            order = init_order + [i for i in dict.fromkeys(task_block["init"]) if i not in init_order]
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task)
            count = "/".join(str(r) for r in sorted(repeats))
            subtitle = f"mean ROC of {count} repeat{'s' if count != '1' else ''} (pooled test folds)"
            paths.append(plot_roc(task, curves, out_dir / f"roc_{safe}.png", reference, order, subtitle))
    return tuple(paths)


# ---- the report -------------------------------------------------------------------------------


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    return path


def write_report(runs: str | os.PathLike[str] | pd.DataFrame, out_dir: str | os.PathLike[str], *, reference: str,
                 alternative: Alternative = "two-sided",
                 predictions: str | os.PathLike[str] | pd.DataFrame | None = None,
                 n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> ReportPaths:
    """Compute the benchmark's statistics and write the report files into `out_dir` (each atomically).

    runs: runs.csv path or frame (``task, init, mode, repeat, fold, auc``); reference: the init every
    other is tested against; alternative: of the Wilcoxon test on (reference − init); predictions:
    optional per-image test predictions (Parquet/CSV path or frame) for ``ci.csv`` and the ROC PNGs;
    n_boot / seed / alpha: the group bootstrap and the intervals' level. Raises `DatasetError` for a
    runs table without the columns or rows, or a reference that is not one of its inits.
    """
    check_alternative(alternative)
    frame = read_runs(runs)
    check_reference(frame, reference)
    out = Path(out_dir)
    report_folder(out)  # a folder of the user's is never written into
    summary = summary_table(frame, reference, alternative)
    folds = fold_level_comparison(frame, reference, alternative)
    tables = paper_tables(summary, reference)
    preds = read_predictions(predictions) if predictions is not None else None
    ci = confidence_intervals(preds, n_boot=n_boot, seed=seed, alpha=alpha) if preds is not None else None

    init_order = list(dict.fromkeys(summary["init"]))
    roc = roc_figures(preds, ci, out, reference, init_order) if preds is not None and ci is not None else ()
    counts = sorted(set(summary["n_repeats"]))
    n_repeats = f"{counts[0]} repeats" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} repeats"
    names = ["summary.csv", "summary.md", "folds.csv"] + (["ci.csv"] if ci is not None else []) + [p.name for p in roc]
    level = f"{100 * (1 - alpha):g} %"
    ci_settings = (f"{level} intervals of the mean over repeats of the pooled AUC (each repeat's AUC over the union "
                   "of its test folds). DeLong: variance of that mean from the averaged structural components, Wald "
                   f"interval clipped to [0, 1]. Bootstrap: {n_boot} replicates (seed {seed}) resampling groups "
                   "(exams / cases) with replacement, the same groups for every repeat; percentile interval. DeLong "
                   "treats images as independent: where a group holds several images, trust the bootstrap.")
    notes = caveats(int(counts[0]), task_images(frame, preds), alternative)
    markdown = render_markdown(tables, folds, ci, reference=reference, alternative=alternative, n_repeats=n_repeats,
                               files=names, ci_settings=ci_settings, notes=notes)
    summary_csv = _write_csv(summary, out / "summary.csv")
    folds_csv = _write_csv(folds, out / "folds.csv")
    ci_csv = _write_csv(ci, out / "ci.csv") if ci is not None else None
    summary_md = write_text(out / "summary.md", markdown)
    return ReportPaths(out, summary_csv, summary_md, folds_csv, ci_csv, roc, summary, tables, ci)

"""Statistics of a downstream benchmark: per-repeat means, Wilcoxon tests, AUC confidence intervals.

Input is a runs table (one row per trained and scored cell) with the columns
``task, init, mode, repeat, fold, auc``. The paper's protocol (section 4.2): every (task, mode, init)
is trained on the same 5 folds, 10 times; the 5 fold AUCs of a repeat are averaged into one value;
the 10 per-repeat values of an init are compared with those of the reference init by the Wilcoxon
signed-rank test, paired by repeat (repeats pair because they share their seeds across inits).

Choices (see also `docs/paper-differences.md`):

- Differences are **reference − init**, i.e. ``scipy.stats.wilcoxon(reference, init)``. So
  ``alternative="greater"`` tests "the reference is better than this init" (what the authors' code
  did, one-sided), ``"less"`` the opposite, and ``"two-sided"`` (the paper's text, our default) either.
- ``zero_method="wilcox"`` (scipy's default: zero differences are dropped) and ``method="auto"``:
  with scipy >= 1.15, the exact null distribution for n <= 50 pairs without ties or zeros, an
  exhaustive sign-flip permutation (also exact) for n <= 13 with ties or zeros, otherwise the normal
  approximation. With 10 repeats every p-value is exact; the smallest two-sided one is 2/2**10 ≈ 0.002.
- A p-value is NaN, with a note, when fewer than 2 repeats pair or every paired difference is zero
  (scipy would answer p = 1 or divide by zero; neither is evidence of anything).
- Only **complete** repeats count (every fold of the task scored, no NaN AUC): the mean of 3 folds
  is not comparable to the mean of 5, and a partial sweep (`--resume`) must not bias the table.
- ``sd_auc`` is the SD (ddof 1) of the per-repeat means over repeats: training noise, what the test
  sees. ``sd_folds`` is the mean over repeats of the SD (ddof 1) over that repeat's folds: the
  split-to-split spread, kept apart from the training noise rather than mixed with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from ..errors import ConfigError, DatasetError

RUN_COLUMNS = ("task", "init", "mode", "repeat", "fold", "auc")
KEYS = ("task", "mode", "init")
Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES = ("two-sided", "greater", "less")
WILCOXON_OPTIONS = {"zero_method": "wilcox", "method": "auto"}


# ---- runs table -------------------------------------------------------------------------------


def validate_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Check a runs table and return a clean copy (auc as float, task/init/mode as str).

    Raises `DatasetError` (one line) for missing columns, no rows, a non-numeric auc or a cell
    ``(task, init, mode, repeat, fold)`` given twice. Rows with a NaN auc are kept here; the
    statistics treat them as missing cells.
    """
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise DatasetError(f"runs table lacks column(s) {', '.join(missing)} (needs {', '.join(RUN_COLUMNS)})")
    if len(runs) == 0:
        raise DatasetError("runs table has no rows")
    frame = runs.copy()
    try:
        frame["auc"] = pd.to_numeric(frame["auc"], errors="raise").astype(float)
    except (ValueError, TypeError):
        raise DatasetError("runs table: column auc holds non-numeric values") from None
    for column in KEYS:
        frame[column] = frame[column].astype(str)
    if frame[["repeat", "fold"]].isna().any().any():
        raise DatasetError("runs table: empty repeat or fold values")
    cells = ["task", "init", "mode", "repeat", "fold"]
    duplicated = frame.duplicated(cells)
    if duplicated.any():
        first = frame.loc[duplicated, cells].iloc[0]
        raise DatasetError("runs table: cell given twice: " + ", ".join(f"{c}={first[c]}" for c in cells))
    return frame


def check_reference(runs: pd.DataFrame, reference: str) -> None:
    """Raise `DatasetError` when `reference` is not one of the table's inits."""
    inits = list(dict.fromkeys(runs["init"].astype(str)))
    if reference not in inits:
        raise DatasetError(f"reference init {reference!r} is not in the runs table (inits: {', '.join(inits)})")


def check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"alternative must be one of {', '.join(ALTERNATIVES)}, not {alternative!r}")


def repeat_means(runs: pd.DataFrame, *, complete_only: bool = False) -> pd.DataFrame:
    """Mean AUC over the folds of each (task, mode, init, repeat).

    Returns columns ``task, mode, init, repeat, mean_auc, sd_folds, n_folds, complete``, one row per
    repeat. ``n_folds`` counts the folds with a finite AUC; a repeat is ``complete`` when it has every
    fold seen anywhere for its task (and no NaN AUC). ``sd_folds`` is the SD (ddof 1) over its folds.
    """
    frame = validate_runs(runs)
    finite = frame[np.isfinite(frame["auc"])]
    folds_per_task = frame.groupby("task")["fold"].nunique()
    grouped = finite.groupby([*KEYS, "repeat"], sort=False)["auc"]
    means = grouped.agg(mean_auc="mean", sd_folds=lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else np.nan,
                        n_folds="size").reset_index()
    cells = frame.groupby([*KEYS, "repeat"], sort=False).size().rename("n_cells").reset_index()
    means = means.merge(cells, on=[*KEYS, "repeat"], how="left")
    means["complete"] = (means["n_folds"] == means["task"].map(folds_per_task)) & (means["n_cells"] == means["n_folds"])
    means = means.drop(columns="n_cells")
    if complete_only:
        means = means[means["complete"]].reset_index(drop=True)
    return means


# ---- Wilcoxon signed-rank tests ---------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """One Wilcoxon test on paired values (differences reference − init)."""

    n_pairs: int
    statistic: float
    p_value: float
    mean_diff: float
    note: str


def paired_wilcoxon(reference: np.ndarray, other: np.ndarray, alternative: Alternative = "two-sided") -> PairedTest:
    """Wilcoxon signed-rank test of ``reference − other`` (both shape (n,), paired by position)."""
    check_alternative(alternative)
    ref = np.asarray(reference, dtype=float)
    oth = np.asarray(other, dtype=float)
    n = len(ref)
    diff = ref - oth
    mean_diff = float(diff.mean()) if n else np.nan
    if n < 2:
        return PairedTest(n, np.nan, np.nan, mean_diff, f"{n} pair(s): no test")
    if np.all(diff == 0):
        return PairedTest(n, np.nan, np.nan, mean_diff, "all paired differences are zero: no test")
    result = sps.wilcoxon(ref, oth, alternative=alternative, **WILCOXON_OPTIONS)
    zeros = int(np.sum(diff == 0))
    ties = len(np.unique(np.abs(diff[diff != 0]))) < n - zeros
    note = ", ".join(x for x in (f"{zeros} zero difference(s) dropped" if zeros else "",
                                  "tied differences" if ties else "") if x)
    return PairedTest(n, float(result.statistic), float(result.pvalue), mean_diff, note)


def _pairs(table: pd.DataFrame, pair_on: list[str], reference: str) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(task, mode, init) → frame with columns ``pair_on + [ref, other]`` of the cells both have."""
    out = []
    for (task, mode), block in table.groupby(["task", "mode"], sort=False):
        ref = block[block["init"] == reference].set_index(pair_on)["value"]
        for init, other in block[block["init"] != reference].groupby("init", sort=False):
            joined = pd.concat([ref.rename("ref"), other.set_index(pair_on)["value"].rename("other")],
                               axis=1, join="inner").sort_index()
            out.append(((task, mode, init), joined))
    return out


def wilcoxon_vs_reference(runs: pd.DataFrame, reference: str,
                          alternative: Alternative = "two-sided") -> pd.DataFrame:
    """The paper's test: per (task, mode, init ≠ reference), Wilcoxon on the per-repeat mean AUCs.

    Repeats pair by their ``repeat`` value; only complete repeats present for both inits are used.
    Returns columns ``task, mode, init, reference, n_pairs, statistic, p_value, mean_diff, alternative,
    note`` where ``mean_diff`` is the mean of (reference − init) over the pairs.
    """
    check_alternative(alternative)
    frame = validate_runs(runs)
    check_reference(frame, reference)
    means = repeat_means(frame, complete_only=True).rename(columns={"mean_auc": "value"})
    # an init absent from a task/mode still gets its row, with no pairs
    rows = []
    tested = {key: joined for key, joined in _pairs(means, ["repeat"], reference)}
    for (task, mode, init), _ in frame.groupby(list(KEYS), sort=False):
        if init == reference:
            continue
        joined = tested.get((task, mode, init), pd.DataFrame({"ref": [], "other": []}))
        result = paired_wilcoxon(joined["ref"].to_numpy(), joined["other"].to_numpy(), alternative)
        rows.append({"task": task, "mode": mode, "init": init, "reference": reference, "n_pairs": result.n_pairs,
                     "statistic": result.statistic, "p_value": result.p_value, "mean_diff": result.mean_diff,
                     "alternative": alternative, "note": result.note})
    return pd.DataFrame(rows, columns=["task", "mode", "init", "reference", "n_pairs", "statistic", "p_value",
                                       "mean_diff", "alternative", "note"])


def fold_level_comparison(runs: pd.DataFrame, reference: str,
                          alternative: Alternative = "two-sided") -> pd.DataFrame:
    """Beyond the paper: pair every (repeat, fold) cell of an init with the reference's same cell.

    Returns columns ``task, mode, init, reference, n_pairs, mean_diff, median_diff, init_wins,
    statistic, p_value, alternative, note`` (differences reference − init over the cells both have;
    ``init_wins`` counts the cells where the init's AUC is higher). The cells of one fold share their
    test images across repeats, so they are not independent: read this p-value as a descriptive
    companion to the per-repeat test, not as a replacement (it is anti-conservative).
    """
    check_alternative(alternative)
    frame = validate_runs(runs)
    check_reference(frame, reference)
    cells = frame[np.isfinite(frame["auc"])].rename(columns={"auc": "value"})
    rows = []
    tested = {key: joined for key, joined in _pairs(cells, ["repeat", "fold"], reference)}
    for (task, mode, init), _ in frame.groupby(list(KEYS), sort=False):
        if init == reference:
            continue
        joined = tested.get((task, mode, init), pd.DataFrame({"ref": [], "other": []}))
        ref, other = joined["ref"].to_numpy(float), joined["other"].to_numpy(float)
        result = paired_wilcoxon(ref, other, alternative)
        rows.append({"task": task, "mode": mode, "init": init, "reference": reference, "n_pairs": result.n_pairs,
                     "mean_diff": result.mean_diff,
                     "median_diff": float(np.median(ref - other)) if len(ref) else np.nan,
                     "init_wins": int(np.sum(other > ref)), "statistic": result.statistic,
                     "p_value": result.p_value, "alternative": alternative, "note": result.note})
    return pd.DataFrame(rows, columns=["task", "mode", "init", "reference", "n_pairs", "mean_diff", "median_diff",
                                       "init_wins", "statistic", "p_value", "alternative", "note"])


def summary_table(runs: pd.DataFrame, reference: str, alternative: Alternative = "two-sided") -> pd.DataFrame:
    """One row per (task, mode, init): the numbers behind the paper's Tables 4 and 5.

    Columns ``task, mode, init, mean_auc, sd_auc, sd_folds, p_value, n_repeats, n_pairs, note``:
    ``mean_auc`` is the mean over complete repeats of the per-repeat mean AUC, ``sd_auc`` their SD
    (ddof 1), ``sd_folds`` the mean over repeats of the SD over folds, ``p_value`` the Wilcoxon test
    against `reference` (NaN on the reference's own rows), ``n_repeats`` the complete repeats.
    Rows are ordered by task, mode, then the reference first and the other inits as they first appear.
    """
    frame = validate_runs(runs)
    check_reference(frame, reference)
    means = repeat_means(frame, complete_only=True)
    tests = wilcoxon_vs_reference(frame, reference, alternative).set_index(list(KEYS))
    rows = []
    for (task, mode, init), _ in frame.groupby(list(KEYS), sort=False):
        block = means[(means["task"] == task) & (means["mode"] == mode) & (means["init"] == init)]
        values = block["mean_auc"].to_numpy(float)
        test = tests.loc[(task, mode, init)] if init != reference else None
        rows.append({
            "task": task, "mode": mode, "init": init,
            "mean_auc": float(values.mean()) if len(values) else np.nan,
            "sd_auc": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
            "sd_folds": float(block["sd_folds"].mean()) if len(values) else np.nan,
            "p_value": np.nan if test is None else float(test["p_value"]),
            "n_repeats": len(values),
            "n_pairs": 0 if test is None else int(test["n_pairs"]),
            "note": "reference" if test is None else str(test["note"]),
        })
    table = pd.DataFrame(rows)
    inits = [reference] + [i for i in dict.fromkeys(frame["init"]) if i != reference]
    modes = order_modes(frame["mode"])
    table["_t"] = table["task"].map({t: k for k, t in enumerate(sorted(set(frame["task"])))})
    table["_m"] = table["mode"].map({m: k for k, m in enumerate(modes)})
    table["_i"] = table["init"].map({m: k for k, m in enumerate(inits)})
    return table.sort_values(["_t", "_m", "_i"]).drop(columns=["_t", "_m", "_i"]).reset_index(drop=True)


def order_modes(modes: pd.Series | list[str]) -> list[str]:
    """Modes in the paper's order: finetune, linear, then any other in order of appearance."""
    seen = list(dict.fromkeys(str(m) for m in modes))
    known = [m for m in ("finetune", "linear") if m in seen]
    return known + [m for m in seen if m not in known]


# ---- AUC and its confidence intervals ---------------------------------------------------------


@dataclass(frozen=True)
class AucInterval:
    """An AUC with a (1 − alpha) confidence interval. ``se`` for DeLong; ``n_valid`` for bootstrap."""

    auc: float
    low: float
    high: float
    se: float = np.nan
    n_valid: int = 0


def _labels_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """labels (N,) in {0, 1} as bool; scores (N,) or (R, N) as float (R, N)."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1:
        s = s[None, :]
    if y.ndim != 1 or s.ndim != 2 or s.shape[1] != len(y):
        raise DatasetError(f"labels (N,) and scores (N,) or (R, N) do not match: {y.shape} vs {np.shape(scores)}")
    if not np.all(np.isin(y, (0, 1))):
        raise DatasetError("labels must be 0 or 1")
    if not np.all(np.isfinite(s)):
        raise DatasetError("scores hold NaN or infinite values")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise DatasetError("an AUC needs both classes among the labels")
    return y, s


def _midranks(values: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties share their average rank) along the last axis."""
    return sps.rankdata(values, method="average", axis=-1)


def delong_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's structural components by the fast midrank algorithm (Sun & Xu 2014).

    labels: (N,) 0/1; scores: (N,) or (R, N), R score vectors of the same cases. Returns
    ``auc (R,), v10 (R, m), v01 (R, n)`` where m / n count positives / negatives:
    ``v10[i] = P(score_neg < score_pos_i) + ½ P(=)`` and ``v01[j] = P(score_pos > score_neg_j) + ½ P(=)``.
    """
    y, s = _labels_scores(labels, scores)
    pos, neg = s[:, y], s[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    rank_all = _midranks(np.concatenate([pos, neg], axis=1))
    rank_pos, rank_neg = _midranks(pos), _midranks(neg)
    v10 = (rank_all[:, :m] - rank_pos) / n          # negatives ranked below each positive
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m    # positives ranked above each negative
    auc = v10.mean(axis=1)
    return auc, v10, v01


def delong_auc_ci(labels: np.ndarray, scores: np.ndarray, alpha: float = 0.05) -> AucInterval:
    """AUC with DeLong's (1988) variance and a Wald interval, clipped to [0, 1].

    labels: (N,) 0/1. scores: (N,), or (R, N) for R score vectors of the same N cases (e.g. the
    pooled test predictions of R repeats): the AUC is then the mean of the R AUCs and its variance
    comes from the averaged structural components — the mean AUC is itself a two-sample U-statistic,
    so this is DeLong's variance of that mean, correlation between the repeats included.
    ``var = S10 / m + S01 / n`` with S10, S01 the sample variances (ddof 1) of the components.
    """
    auc, v10, v01 = delong_components(labels, scores)
    v10, v01 = v10.mean(axis=0), v01.mean(axis=0)
    m, n = len(v10), len(v01)
    var = (np.var(v10, ddof=1) / m if m > 1 else np.nan) + (np.var(v01, ddof=1) / n if n > 1 else np.nan)
    se = float(np.sqrt(var))
    z = float(sps.norm.ppf(1 - alpha / 2))
    mean_auc = float(auc.mean())
    return AucInterval(mean_auc, max(0.0, mean_auc - z * se), min(1.0, mean_auc + z * se), se=se, n_valid=m + n)


def resampled_auc(labels: np.ndarray, scores: np.ndarray, group_index: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC of one score vector under B group resamples (ties count ½).

    labels (N,) bool; scores (N,); group_index (N,) the group of each image in 0..G-1; counts (G, B)
    how many times each group is drawn in each resample (an image weighs its group's count).
    Returns (B,), NaN where a resample holds one class only. O(N + K·B) for K distinct scores.
    """
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    block = np.empty(len(scores), dtype=np.int64)
    block[order] = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1     # tie block, low to high
    shape = (int(block.max()) + 1, counts.shape[0])
    # (K, G) incidence of positives / negatives, times (G, B) counts = class weight per tie block
    pos_w = sparse.csr_matrix((labels.astype(float), (block, group_index)), shape=shape) @ counts
    neg_w = sparse.csr_matrix(((~labels).astype(float), (block, group_index)), shape=shape) @ counts
    below = np.cumsum(neg_w, axis=0) - neg_w                          # negative weight strictly below
    total_pos, total_neg = pos_w.sum(axis=0), neg_w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos_w * (below + 0.5 * neg_w)).sum(axis=0) / (total_pos * total_neg)
    auc[(total_pos == 0) | (total_neg == 0)] = np.nan
    return np.asarray(auc)


def bootstrap_auc_ci(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray | None = None,
                     n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> AucInterval:
    """Percentile interval of the AUC from a group-level (exam / case) bootstrap.

    labels: (N,) 0/1; scores: (N,) or (R, N) (then the statistic is the mean of the R AUCs, every
    replicate resampling the same groups for all R); groups: (N,) exam or case ids (None: each image
    is its own group). Each replicate draws as many groups as there are, with replacement, and keeps
    all images of each drawn group as many times as it was drawn; replicates with one class only are
    skipped (``n_valid`` counts the others). Deterministic for a given `seed`.
    """
    y, s = _labels_scores(labels, scores)
    group_ids = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(group_ids) != len(y):
        raise DatasetError("groups (N,) does not match labels (N,)")
    _, group_index = np.unique(group_ids, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    rng = np.random.default_rng(seed)
    once = np.ones((n_groups, 1))
    estimate = float(np.mean([resampled_auc(y, row, group_index, once)[0] for row in s]))
    replicates = np.empty(n_boot)
    chunk = max(1, min(n_boot, 4_000_000 // max(1, len(y))))        # bound the (K, B) work arrays
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        counts = np.bincount((np.arange(b)[:, None] * n_groups + draws).ravel(), minlength=b * n_groups)
        counts = np.ascontiguousarray(counts.reshape(b, n_groups).T, dtype=float)    # (G, b)
        replicates[start:start + b] = np.mean([resampled_auc(y, row, group_index, counts) for row in s], axis=0)
    valid = replicates[np.isfinite(replicates)]
    if len(valid) == 0:
        return AucInterval(estimate, np.nan, np.nan, n_valid=0)
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return AucInterval(estimate, float(low), float(high), n_valid=len(valid))

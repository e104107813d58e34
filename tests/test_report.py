"""Benchmark statistics and report: hand-made runs recomputed with numpy loops and scipy directly,
DeLong against an O(n²) Mann-Whitney computation, the group bootstrap, ROC figures and the CLI."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from modan_dicom.cli import main
from modan_dicom.errors import DatasetError
from modan_dicom.evaluate.report import mean_roc, read_predictions, roc_points, write_report
from modan_dicom.evaluate.stats import (
    bootstrap_auc_ci,
    delong_auc_ci,
    fold_level_comparison,
    repeat_means,
    resampled_auc,
    summary_table,
    wilcoxon_vs_reference,
)

TASKS = ("acl", "breast", "thyroid")
MODES = ("finetune", "linear")
INITS = ("mulsupcon", "simclr", "scratch")
# true mean AUC per (task, mode, init): mulsupcon best except breast/finetune (simclr), linear/thyroid close
LEVEL = {
    ("acl", "finetune"): (0.96, 0.95, 0.90), ("breast", "finetune"): (0.926, 0.94, 0.88),
    ("thyroid", "finetune"): (0.76, 0.69, 0.68), ("acl", "linear"): (0.68, 0.84, 0.70),
    ("breast", "linear"): (0.72, 0.80, 0.72), ("thyroid", "linear"): (0.64, 0.645, 0.56),
}


def hand_made_runs(seed: int = 7) -> pd.DataFrame:
    """3 tasks × 2 modes × 3 inits × 10 repeats × 5 folds of AUCs, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for (task, mode), levels in LEVEL.items():
        fold_effect = rng.normal(0, 0.03, size=5)          # folds differ, equally for every init
        for init, level in zip(INITS, levels):
            for repeat in range(10):
                repeat_effect = rng.normal(0, 0.01)
                for fold in range(5):
                    auc = level + fold_effect[fold] + repeat_effect + rng.normal(0, 0.01)
                    rows.append({"task": task, "init": init, "mode": mode, "repeat": repeat, "fold": fold,
                                 "auc": float(np.clip(auc, 0, 1)), "n_train": 80, "n_test": 20, "seconds": 1.5})
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def appearance_order(runs: pd.DataFrame, reference: str = "mulsupcon") -> list[str]:
    return [reference] + [i for i in dict.fromkeys(runs["init"]) if i != reference]


def loop_repeat_means(runs: pd.DataFrame, task: str, mode: str, init: str) -> dict[int, list[float]]:
    """repeat → its fold AUCs, with plain loops (the independent computation)."""
    out: dict[int, list[float]] = {}
    for row in runs.itertuples():
        if (row.task, row.mode, row.init) == (task, mode, init):
            out.setdefault(int(row.repeat), []).append(float(row.auc))
    return out


def expected_numbers(runs: pd.DataFrame, reference: str, alternative: str) -> dict[tuple[str, str, str], dict]:
    expected = {}
    for task in TASKS:
        for mode in MODES:
            ref = loop_repeat_means(runs, task, mode, reference)
            for init in INITS:
                folds = loop_repeat_means(runs, task, mode, init)
                repeats = sorted(folds)
                means = np.array([np.mean(folds[r]) for r in repeats])
                common = sorted(set(ref) & set(folds))
                p = np.nan
                if init != reference:
                    x = np.array([np.mean(ref[r]) for r in common])
                    y = np.array([np.mean(folds[r]) for r in common])
                    p = sps.wilcoxon(x, y, alternative=alternative).pvalue
                expected[(task, mode, init)] = {
                    "mean_auc": float(np.mean(means)), "sd_auc": float(np.std(means, ddof=1)),
                    "sd_folds": float(np.mean([np.std(folds[r], ddof=1) for r in repeats])),
                    "p_value": float(p), "n_repeats": len(repeats)}
    return expected


# ---- the paper's numbers ----------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_summary_recomputes_means_and_scipy_wilcoxon_exactly(alternative: str) -> None:
    runs = hand_made_runs()
    summary = summary_table(runs, "mulsupcon", alternative)
    expected = expected_numbers(runs, "mulsupcon", alternative)
    assert len(summary) == len(expected) == 18
    for row in summary.itertuples():
        want = expected[(row.task, row.mode, row.init)]
        assert row.mean_auc == pytest.approx(want["mean_auc"], abs=1e-12)
        assert row.sd_auc == pytest.approx(want["sd_auc"], abs=1e-12)
        assert row.sd_folds == pytest.approx(want["sd_folds"], abs=1e-12)
        assert row.n_repeats == want["n_repeats"] == 10
        if row.init == "mulsupcon":
            assert math.isnan(row.p_value) and row.note == "reference"
        else:
            assert row.p_value == pytest.approx(want["p_value"], abs=1e-12)
    # the reference first within each (task, mode), then the inits as they first appear; tasks sorted
    assert list(summary["init"][:3]) == appearance_order(runs)
    assert list(dict.fromkeys(summary["task"])) == list(TASKS)
    assert list(dict.fromkeys(summary["mode"])) == list(MODES)


def test_alternatives_flip_with_the_sign_of_reference_minus_init() -> None:
    runs = hand_made_runs()
    tests = {alt: wilcoxon_vs_reference(runs, "mulsupcon", alt).set_index(["task", "mode", "init"])
             for alt in ("two-sided", "greater", "less")}
    # acl/finetune: the reference beats scratch in all 10 repeats -> the exact null gives 1/1024, 2/1024
    key = ("acl", "finetune", "scratch")
    assert tests["greater"].loc[key, "p_value"] == pytest.approx(1 / 1024, abs=1e-15)
    assert tests["two-sided"].loc[key, "p_value"] == pytest.approx(2 / 1024, abs=1e-15)
    assert tests["less"].loc[key, "p_value"] == pytest.approx(1.0, abs=1e-15)
    assert tests["two-sided"].loc[key, "mean_diff"] > 0
    # acl/linear: simclr beats the reference everywhere -> the mirror image
    key = ("acl", "linear", "simclr")
    assert tests["less"].loc[key, "p_value"] == pytest.approx(1 / 1024, abs=1e-15)
    assert tests["greater"].loc[key, "p_value"] == pytest.approx(1.0, abs=1e-15)
    assert tests["two-sided"].loc[key, "mean_diff"] < 0
    assert set(tests["two-sided"]["n_pairs"]) == {10}


def test_only_complete_repeats_present_for_both_inits_pair() -> None:
    runs = hand_made_runs()
    in_task = (runs["task"] == "thyroid") & (runs["mode"] == "finetune")
    drop = in_task & (runs["init"] == "simclr") & (runs["repeat"] == 3)                      # a whole repeat
    drop |= in_task & (runs["init"] == "scratch") & (runs["repeat"] == 7) & (runs["fold"] == 2)  # one fold
    nan_cell = in_task & (runs["init"] == "mulsupcon") & (runs["repeat"] == 5) & (runs["fold"] == 0)
    runs = runs[~drop].copy()
    runs.loc[nan_cell[~drop], "auc"] = np.nan                                                # a failed cell
    means = repeat_means(runs)
    block = means[(means["task"] == "thyroid") & (means["mode"] == "finetune")].set_index(["init", "repeat"])
    assert not block.loc[("scratch", 7), "complete"] and block.loc[("scratch", 7), "n_folds"] == 4
    assert not block.loc[("mulsupcon", 5), "complete"]
    summary = summary_table(runs, "mulsupcon").set_index(["task", "mode", "init"])
    assert summary.loc[("thyroid", "finetune", "mulsupcon"), "n_repeats"] == 9
    assert summary.loc[("thyroid", "finetune", "simclr"), "n_repeats"] == 9
    assert summary.loc[("thyroid", "finetune", "scratch"), "n_pairs"] == 8
    ref = loop_repeat_means(runs.dropna(subset=["auc"]), "thyroid", "finetune", "mulsupcon")
    other = loop_repeat_means(runs, "thyroid", "finetune", "scratch")
    common = [r for r in range(10) if r not in (5, 7)]
    want = sps.wilcoxon([np.mean(ref[r]) for r in common], [np.mean(other[r]) for r in common]).pvalue
    assert summary.loc[("thyroid", "finetune", "scratch"), "p_value"] == pytest.approx(want, abs=1e-12)


def test_no_test_when_fewer_than_two_pairs_or_all_differences_zero() -> None:
    rows = []
    for init in ("ref", "same", "other"):
        for repeat in range(3):
            for fold in range(2):
                auc = 0.8 + 0.01 * fold + (0.05 if init == "other" else 0.0)
                rows.append({"task": "t", "init": init, "mode": "linear", "repeat": repeat, "fold": fold, "auc": auc})
    runs = pd.DataFrame(rows)
    tests = wilcoxon_vs_reference(runs, "ref").set_index("init")
    assert math.isnan(tests.loc["same", "p_value"]) and "zero" in tests.loc["same", "note"]
    assert tests.loc["other", "p_value"] == pytest.approx(sps.wilcoxon([0.805] * 3, [0.855] * 3).pvalue)
    one = wilcoxon_vs_reference(runs[runs["repeat"] == 0], "ref").set_index("init")
    assert math.isnan(one.loc["other", "p_value"]) and one.loc["other", "n_pairs"] == 1


def test_fold_level_comparison_pairs_cells() -> None:
    runs = hand_made_runs()
    folds = fold_level_comparison(runs, "mulsupcon").set_index(["task", "mode", "init"])
    key = ("breast", "finetune", "simclr")
    cells = runs[(runs["task"] == "breast") & (runs["mode"] == "finetune")]
    ref = cells[cells["init"] == "mulsupcon"].set_index(["repeat", "fold"])["auc"].sort_index()
    oth = cells[cells["init"] == "simclr"].set_index(["repeat", "fold"])["auc"].sort_index()
    assert folds.loc[key, "n_pairs"] == 50
    assert folds.loc[key, "mean_diff"] == pytest.approx(float(np.mean(ref.to_numpy() - oth.to_numpy())), abs=1e-12)
    assert folds.loc[key, "init_wins"] == int(np.sum(oth.to_numpy() > ref.to_numpy()))
    assert folds.loc[key, "p_value"] == pytest.approx(sps.wilcoxon(ref.to_numpy(), oth.to_numpy()).pvalue, abs=1e-12)


@pytest.mark.parametrize("broken, message", [
    (lambda r: r.drop(columns="auc"), "lacks column(s) auc"),
    (lambda r: r.iloc[:0], "no rows"),
    (lambda r: pd.concat([r, r.iloc[:1]]), "cell given twice"),
])
def test_bad_runs_tables_raise_one_line(broken, message: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)) as info:
        write_report(broken(hand_made_runs()), tmp_path, reference="mulsupcon")
    assert "\n" not in str(info.value)


def test_unknown_reference_raises() -> None:
    with pytest.raises(DatasetError, match="reference init 'moco' is not in the runs table"):
        summary_table(hand_made_runs(), "moco")


# ---- summary.md -------------------------------------------------------------------------------


def parse_md_tables(text: str) -> dict[str, list[list[str]]]:
    """Section heading → rows of cells (header row first) of the table below it."""
    tables: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and heading is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                tables.setdefault(heading, []).append(cells)
    return tables


def test_summary_md_has_the_paper_tables_with_bold_marks(tmp_path: Path) -> None:
    runs = hand_made_runs()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    paths = write_report(tmp_path / "runs.csv", tmp_path / "report", reference="mulsupcon")
    assert paths.ci_csv is None and paths.roc_png == ()
    assert [p.name for p in paths.files] == ["summary.csv", "summary.md", "folds.csv"]
    expected = expected_numbers(runs, "mulsupcon", "two-sided")
    saved = pd.read_csv(paths.summary_csv)
    assert list(saved.columns[:8]) == ["task", "mode", "init", "mean_auc", "sd_auc", "sd_folds", "p_value", "n_repeats"]
    assert np.allclose(saved["mean_auc"], [expected[(r.task, r.mode, r.init)]["mean_auc"] for r in saved.itertuples()],
                       rtol=0, atol=1e-12)
    tables = parse_md_tables(paths.summary_md.read_text(encoding="utf-8"))
    seen_bold_p = seen_plain_p = 0
    for mode, title in (("finetune", "Fine-tuning"), ("linear", "Linear probing")):
        (heading,) = [h for h in tables if h.startswith(title)]
        header, *rows = tables[heading]
        assert header == ["init"] + [f"{t} {w}" for t in TASKS for w in ("AUC", "p")]
        order = appearance_order(runs)
        assert [r[0] for r in rows] == ["mulsupcon (reference)"] + order[1:]
        for k, task in enumerate(TASKS):
            best = max(expected[(task, mode, i)]["mean_auc"] for i in INITS)
            for row, init in zip(rows, order):
                want = expected[(task, mode, init)]
                auc_cell, p_cell = row[1 + 2 * k], row[2 + 2 * k]
                assert auc_cell.strip("*") == f"{want['mean_auc']:.3f}"
                assert auc_cell.startswith("**") == (round(want["mean_auc"], 3) == round(best, 3))
                if init == "mulsupcon":
                    assert p_cell == "—"
                    continue
                assert p_cell.startswith("**") == (want["p_value"] <= 0.05)
                assert p_cell.strip("*") == (f"{want['p_value']:.3f}" if want["p_value"] >= 0.0005 else "<0.001")
                seen_bold_p += p_cell.startswith("**")
                seen_plain_p += not p_cell.startswith("**")
    assert seen_bold_p and seen_plain_p                      # the data exercise both marks
    fold_rows = tables["Fold-level paired comparison"]
    assert len(fold_rows) == 1 + 12


# ---- DeLong and the bootstrap -----------------------------------------------------------------


def loop_delong(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """O(m·n) Mann-Whitney kernel with explicit loops: AUC and DeLong's variance (ddof 1)."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]

    def psi(x: float, y: float) -> float:
        return 1.0 if x > y else 0.5 if x == y else 0.0

    v10 = [sum(psi(x, y) for y in neg) / len(neg) for x in pos]
    v01 = [sum(psi(x, y) for x in pos) / len(pos) for y in neg]
    auc = sum(v10) / len(pos)
    s10 = sum((v - auc) ** 2 for v in v10) / (len(pos) - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (len(neg) - 1)
    return auc, s10 / len(pos) + s01 / len(neg)


def test_delong_matches_the_quadratic_mann_whitney_computation() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(90) < 0.35).astype(int)
    scores = np.round(labels * 0.8 + rng.normal(size=90), 1)            # rounded: many ties
    auc, var = loop_delong(labels, scores)
    result = delong_auc_ci(labels, scores, alpha=0.05)
    assert result.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result.auc == pytest.approx(auc, abs=1e-12)
    assert result.se ** 2 == pytest.approx(var, rel=1e-10)
    z = sps.norm.ppf(0.975)
    assert (result.low, result.high) == pytest.approx((auc - z * math.sqrt(var), auc + z * math.sqrt(var)), abs=1e-12)


def test_delong_of_a_mean_over_repeats_averages_the_components() -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random(60) < 0.5).astype(int)
    scores = labels * 0.7 + rng.normal(size=(4, 60))
    result = delong_auc_ci(labels, scores)
    assert result.auc == pytest.approx(np.mean([roc_auc_score(labels, s) for s in scores]), abs=1e-12)
    # the mean AUC is the Mann-Whitney statistic of the averaged kernel: with ranks of averaged pairs
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    kernel = ((pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])).mean(axis=0)
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
    var = np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01)
    assert result.se ** 2 == pytest.approx(var, rel=1e-10)
    single = delong_auc_ci(labels, scores[0])
    assert result.se < single.se                                          # averaging repeats removes noise


def test_delong_interval_covers_the_true_auc_about_95_percent() -> None:
    rng = np.random.default_rng(3)
    shift = 1.0
    true_auc = sps.norm.cdf(shift / math.sqrt(2))                         # binormal, unit variances
    hits = 0
    for _ in range(400):
        labels = np.r_[np.ones(40, int), np.zeros(60, int)]
        scores = np.r_[rng.normal(shift, 1, 40), rng.normal(0, 1, 60)]
        ci = delong_auc_ci(labels, scores)
        hits += ci.low <= true_auc <= ci.high
    assert 0.91 <= hits / 400 <= 0.98


def test_resampled_auc_equals_the_auc_of_the_replicated_data() -> None:
    rng = np.random.default_rng(4)
    labels = rng.random(30) < 0.4
    scores = np.round(rng.normal(size=30), 1)
    groups = rng.integers(0, 12, size=30)
    counts = rng.integers(0, 3, size=(12, 5)).astype(float)
    got = resampled_auc(labels, scores, groups, counts)
    for b in range(5):
        times = counts[groups, b].astype(int)
        y, s = np.repeat(labels, times), np.repeat(scores, times)
        assert got[b] == pytest.approx(roc_auc_score(y, s), abs=1e-12) if 0 < y.sum() < len(y) else math.isnan(got[b])


def test_bootstrap_is_deterministic_contains_the_auc_and_resamples_groups() -> None:
    rng = np.random.default_rng(5)
    n_groups, k = 60, 4
    case_labels = (rng.random(n_groups) < 0.4).astype(int)
    case_scores = case_labels * 0.9 + rng.normal(size=n_groups)
    one = bootstrap_auc_ci(case_labels, case_scores, None, n_boot=500, seed=11)
    assert one.auc == pytest.approx(roc_auc_score(case_labels, case_scores), abs=1e-12)
    assert one.low < one.auc < one.high and one.n_valid == 500
    assert bootstrap_auc_ci(case_labels, case_scores, None, n_boot=500, seed=11) == one
    assert bootstrap_auc_ci(case_labels, case_scores, None, n_boot=500, seed=12) != one
    # every exam has k images sharing its score: resampling exams gives the exam-level interval ...
    labels, scores = np.repeat(case_labels, k), np.repeat(case_scores, k)
    groups = np.repeat([f"exam{g:03d}" for g in range(n_groups)], k)
    grouped = bootstrap_auc_ci(labels, scores, groups, n_boot=500, seed=11)
    assert (grouped.auc, grouped.low, grouped.high) == pytest.approx((one.auc, one.low, one.high), abs=1e-12)
    # ... while resampling images pretends to have k times more cases: a much narrower interval
    images = bootstrap_auc_ci(labels, scores, None, n_boot=500, seed=11)
    assert images.high - images.low < 0.7 * (grouped.high - grouped.low)


# ---- predictions, ci.csv, ROC -----------------------------------------------------------------


def predictions_frame(seed: int = 0, repeats: int = 3) -> pd.DataFrame:
    """2 tasks × 2 modes × 3 inits × repeats: 60 images in 30 exams, 5 exam-grouped folds."""
    rng = np.random.default_rng(seed)
    exam = np.repeat(np.arange(30), 2)
    label = (np.arange(30) % 3 == 0).astype(int)[exam]
    fold = (np.arange(30) % 5)[exam]
    rows = []
    for task in ("acl", "thyroid"):
        for mode in MODES:
            for strength, init in zip((1.5, 1.0, 0.3), INITS):
                for repeat in range(repeats):
                    score = strength * label + rng.normal(size=60)
                    rows += [{"task": task, "init": init, "mode": mode, "repeat": repeat, "fold": int(fold[i]),
                              "id": f"img{i:02d}", "group": f"exam{exam[i]:02d}", "label": int(label[i]),
                              "score": float(score[i])} for i in range(60)]
    return pd.DataFrame(rows)


def runs_from(predictions: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, init, mode, repeat, fold), block in predictions.groupby(["task", "init", "mode", "repeat", "fold"]):
        rows.append({"task": task, "init": init, "mode": mode, "repeat": repeat, "fold": fold,
                     "auc": roc_auc_score(block["label"], block["score"])})
    return pd.DataFrame(rows)


def test_ci_csv_and_roc_pngs_from_predictions(tmp_path: Path) -> None:
    preds = predictions_frame()
    paths = write_report(runs_from(preds), tmp_path, reference="mulsupcon", predictions=preds, n_boot=200, seed=1)
    ci = pd.read_csv(paths.ci_csv)
    assert len(ci) == 12
    for row in ci.itertuples():
        block = preds[(preds["task"] == row.task) & (preds["mode"] == row.mode) & (preds["init"] == row.init)]
        pooled = [roc_auc_score(b["label"], b["score"]) for _, b in block.groupby("repeat")]
        assert row.auc == pytest.approx(np.mean(pooled), abs=1e-12)
        assert row.delong_low < row.auc < row.delong_high and row.boot_low < row.auc < row.boot_high
        assert (row.n_repeats, row.n_images, row.n_groups, row.n_pos) == (3, 60, 30, 20)
    assert [p.name for p in paths.roc_png] == ["roc_acl.png", "roc_thyroid.png"]
    for png in paths.roc_png:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    text = paths.summary_md.read_text(encoding="utf-8")
    assert "Confidence intervals of the pooled AUC" in text and "roc_acl.png" in text
    assert not list(tmp_path.glob(".*tmp"))                                   # atomic writes left nothing


def test_roc_points_integrate_to_the_auc() -> None:
    rng = np.random.default_rng(6)
    labels = (rng.random(80) < 0.5).astype(int)
    scores = np.round(labels + rng.normal(size=80), 1)
    fpr, tpr = roc_points(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    grid, mean_tpr = mean_roc(labels, np.stack([scores, scores]), grid=2001)
    assert np.trapezoid(mean_tpr, grid) == pytest.approx(roc_auc_score(labels, scores), abs=2e-3)


def test_predictions_with_two_labels_for_one_image_are_refused() -> None:
    preds = predictions_frame(repeats=2)
    preds.loc[(preds["id"] == "img00") & (preds["repeat"] == 1), "label"] = 1 - preds["label"].iloc[0]
    with pytest.raises(DatasetError, match="two labels"):
        write_report(runs_from(predictions_frame(repeats=2)), "/nonexistent-never-written", reference="mulsupcon",
                     predictions=read_predictions(preds))


# ---- CLI --------------------------------------------------------------------------------------


def test_cli_report_renders_tables_and_finds_predictions_beside_runs(tmp_path: Path) -> None:
    preds = predictions_frame(repeats=2)
    runs_from(preds).to_csv(tmp_path / "runs.csv", index=False)
    preds.to_parquet(tmp_path / "predictions.parquet")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "runs.csv"), "--reference", "mulsupcon",
                                       "--alternative", "greater", "--n-boot", "100", "-o", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Fine-tuning" in result.output and "Linear probing" in result.output and "mulsupcon (reference)" in result.output
    assert "report written to" in result.stderr and "roc_acl.png" in result.stderr
    assert (tmp_path / "rep" / "roc_thyroid.png").stat().st_size > 0
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    want = summary_table(runs_from(preds), "mulsupcon", "greater")
    assert np.allclose(summary["p_value"], want["p_value"], equal_nan=True, rtol=0, atol=1e-12)


@pytest.mark.parametrize("args, message", [
    (["--reference", "mulsupcon"], "lacks column(s) auc"),
    (["--reference", "moco"], "reference init 'moco'"),
])
def test_cli_report_errors_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    runs = hand_made_runs()
    if "mulsupcon" in args:
        runs = runs.drop(columns="auc")
    runs.to_csv(tmp_path / "runs.csv", index=False)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "runs.csv"), *args, "-o", str(tmp_path / "rep")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "rep" / "summary.md").exists()


def test_small_runs_say_they_are_a_smoke_test_and_what_p_they_allow() -> None:
    from modan_dicom.evaluate.report import caveats, smallest_p

    assert smallest_p(2) == 0.5 and smallest_p(5) == 0.0625 and smallest_p(6) == 0.03125
    assert smallest_p(4, "greater") == 0.0625
    smoke, floor = caveats(2, {"acl": 40, "thyroid": 349})
    assert "Smoke test" in smoke and "2 repeats" in smoke and "40 images (acl)" in smoke and "thyroid" not in smoke
    assert "2/2^2 = 0.5" in floor
    assert caveats(10, {"acl": 1021}) == []
    assert caveats(5, {"acl": 1021}) == [caveats(5, {})[0]] and "0.0625" in caveats(5, {})[0]
    assert "n/a" in caveats(1, {})[1]

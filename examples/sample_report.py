"""Write the sample report shown in the docs (docs/sample-report/) from synthetic benchmark results.

No network is trained: every score is drawn from a binormal model with a made-up AUC per
(task, mode, init), so the numbers only show what `modan-dicom report` writes, not any finding.
The cases, their images per case and the class balance follow the paper's three tasks (Table 1):
ACL exams with 1-5 sagittal slices, one breast image per case, thyroid nodules with 1-3 images.

    python examples/sample_report.py                    # docs/sample-report/: summary.md + roc_acl.png
    python examples/sample_report.py --all OUT_DIR      # every file of the report, plus runs.csv and predictions
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from modan_dicom.atomic import write_bytes, write_text
from modan_dicom.evaluate.report import write_report

SEED = 0
REPEATS, FOLDS = 10, 5
INITS = ("mulsupcon", "simclr", "sup165", "imagenet", "scratch")
# task -> (cases, images per case (low, high), positive fraction)
TASKS = {"acl": (340, (1, 5), 0.44), "breast": (779, (1, 1), 0.27), "thyroid": (175, (1, 3), 0.18)}
# made-up target AUCs, (task, mode) -> one per init in INITS order
TARGET = {
    ("acl", "finetune"): (0.93, 0.92, 0.70, 0.88, 0.89), ("acl", "linear"): (0.74, 0.80, 0.77, 0.81, 0.70),
    ("breast", "finetune"): (0.90, 0.91, 0.72, 0.87, 0.86), ("breast", "linear"): (0.74, 0.78, 0.73, 0.77, 0.72),
    ("thyroid", "finetune"): (0.75, 0.70, 0.58, 0.70, 0.68), ("thyroid", "linear"): (0.64, 0.66, 0.63, 0.62, 0.57),
}


def cohort(task: str, rng: np.random.Generator) -> pd.DataFrame:
    """Images of one task: id, group (case), label, fold (cases stratified into 5 folds)."""
    n_cases, (low, high), positive = TASKS[task]
    labels = (rng.random(n_cases) < positive).astype(int)
    fold = np.empty(n_cases, dtype=int)
    for value in (0, 1):                                   # stratified: deal each class round-robin
        members = rng.permutation(np.flatnonzero(labels == value))
        fold[members] = np.arange(len(members)) % FOLDS
    per_case = rng.integers(low, high + 1, size=n_cases)
    case = np.repeat(np.arange(n_cases), per_case)
    return pd.DataFrame({"id": [f"{task}-{k:04d}" for k in range(len(case))], "group": [f"{task}-case{c:03d}" for c in case],
                         "label": labels[case], "fold": fold[case], "case_effect": rng.normal(size=n_cases)[case]})


def synthetic_results(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, predictions) in the benchmark's formats."""
    rng = np.random.default_rng(seed)
    predictions = []
    for task in TASKS:
        images = cohort(task, rng)
        y = images["label"].to_numpy()
        for mode in ("finetune", "linear"):
            for init, target in zip(INITS, TARGET[(task, mode)]):
                separation = np.sqrt(2) * stats.norm.ppf(target)   # binormal: AUC = Φ(d / √2)
                for repeat in range(REPEATS):
                    d = separation + rng.normal(0, 0.08)             # training noise of this repeat
                    noise = 0.6 * images["case_effect"].to_numpy() + 0.8 * rng.normal(size=len(images))
                    block = images[["id", "group", "label", "fold"]].copy()
                    block["score"] = d * y + noise
                    block = block.assign(task=task, init=init, mode=mode, repeat=repeat)
                    predictions.append(block)
    predictions = pd.concat(predictions, ignore_index=True)
    runs = (predictions.groupby(["task", "init", "mode", "repeat", "fold"], sort=False)
            .apply(lambda b: pd.Series({"auc": roc_auc_score(b["label"], b["score"]), "n_test": len(b)}),
                   include_groups=False)
            .reset_index())
    return runs, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "sample-report")
    parser.add_argument("--all", type=Path, default=None, help="Write every report file (and the inputs) here instead.")
    args = parser.parse_args()
    runs, predictions = synthetic_results()
    note = ("> **Synthetic sample.** Made by `examples/sample_report.py` (seed 0) from scores drawn with made-up AUCs; "
            "no network was trained, so the numbers illustrate the report's format only.\n\n")
    if args.all is not None:
        args.all.mkdir(parents=True, exist_ok=True)
        runs.to_csv(args.all / "runs.csv", index=False)
        predictions.to_parquet(args.all / "predictions.parquet")
        paths = write_report(args.all / "runs.csv", args.all, reference="mulsupcon", predictions=predictions)
        write_text(paths.summary_md, note + paths.summary_md.read_text(encoding="utf-8"))
        print(f"report written to {args.all}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_report(runs, tmp, reference="mulsupcon", predictions=predictions)
        kept = note.rstrip("\n") + " Only `summary.md` and `roc_acl.png` are kept in the docs; `--all DIR` writes every file.\n\n"
        write_text(args.out / "summary.md", kept + paths.summary_md.read_text(encoding="utf-8"))
        write_bytes(args.out / "roc_acl.png", (Path(tmp) / "roc_acl.png").read_bytes())
    print(f"sample report written to {args.out}")


if __name__ == "__main__":
    main()

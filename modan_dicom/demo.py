"""`modan-dicom demo`: the whole pipeline on a synthetic export, on CPU, in minutes.

Each step is the real command's library function with small sizes: synthesise a PACS export and
the three downstream task replicas, index the export, pretrain MulSupCon and SimCLR briefly,
benchmark them against random initialisation (fine-tuning and linear probing, a few repeats),
write the paper-style report, and draw the UMAP of Figure 2. Returns where every artefact is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import OutputError


@dataclass
class DemoResult:
    """The artefacts of a demo run, by name (export, index, encoders ...)."""

    out: Path
    artefacts: dict[str, Path] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    patients: int = 24,
    image_size: int = 48,
    epochs: int = 3,
    repeats: int = 2,
    task_images: int = 40,
    task_image_size: int = 32,
    finetune_epochs: int = 2,
    workers: int = 2,
    step: Callable[[str], None] | None = None,
    on_cell: Callable[[dict[str, Any]], None] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> DemoResult:
    """Run synth → index → pretrain (mulsupcon, simclr) under `out` and return the artefacts.

    Args:
        out: a new or empty folder (a previous demo folder is refused rather than overwritten).
        patients: synthetic patients (about 18 files each).
        image_size: pixels of the training images (small, for a CPU).
        epochs: pretraining epochs per method.
        repeats: benchmark repeats of the 5-fold protocol (the paper: 10).
        task_images: images per synthetic downstream task.
        task_image_size: pixels of the downstream images (the encoders are resolution-agnostic CNNs).
        finetune_epochs: downstream training epochs (the paper: 10).
        step: called with a short description before each step.
        on_cell, progress: the benchmark's callbacks (`modan_dicom.evaluate.benchmark.benchmark`): its
            longest step, so a caller can show each finished cell.
    """
    from .evaluate.benchmark import benchmark
    from .evaluate.embed import embed
    from .evaluate.tasks import TASK_NAMES
    from .evaluate.visualize import visualize
    from .ingest.index import run_index
    from .synth import synth_export
    from .synth.tasks import synth_task
    from .train import pretrain

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise OutputError(f"{out} is not empty: give --out a new folder")
    report = step or (lambda _: None)
    result = DemoResult(out)

    report("synthesising a PACS export")
    export = out / "export"
    manifest = synth_export(export, seed=seed, n_patients=patients, image_size=max(64, image_size))
    result.artefacts["export"] = export
    result.notes["export"] = f"{len(manifest)} files"

    report("indexing it")
    index = run_index(export, out / "index.parquet", workers=workers, salt=f"demo-{seed}", return_frame=False)
    result.artefacts["index"] = index.output
    counts = index.summary.by_status
    result.notes["index"] = ", ".join(f"{n} {s}" for s, n in counts.items() if n)

    for method in ("mulsupcon", "simclr"):
        report(f"pretraining {method} ({epochs} epochs, {image_size} px, CPU)")
        encoder = pretrain(
            {
                "index": str(index.output), "out": str(out / "runs" / method), "method": method,
                "epochs": epochs, "batch_size": 64, "image_size": image_size, "stem": "torchvision",
                "warmup_epochs": 1, "workers": workers, "seed": seed,
            }
        )
        result.artefacts[f"encoder ({method})"] = encoder

    report("synthesising the downstream tasks (ACL, breast, thyroid replicas)")
    tasks = out / "tasks"
    for task in TASK_NAMES:
        synth_task(task, tasks, seed=seed, image_size=task_image_size, n_images=task_images)
    result.artefacts["downstream tasks"] = tasks

    inits = {name: str(result.artefacts[f"encoder ({name})"]) for name in ("mulsupcon", "simclr")}
    inits["scratch"] = "scratch"
    report(f"benchmarking {', '.join(inits)} (fine-tune and linear probe, {repeats} repeats x 5 folds)")
    results = benchmark(
        TASK_NAMES, tasks, inits, out / "results", repeats=repeats, epochs=finetune_epochs, image_size=task_image_size,
        stem="torchvision", reference="mulsupcon", seed=seed, workers=workers, device="cpu",
        on_cell=on_cell, progress=progress,
    )
    result.artefacts["runs"] = results / "runs.csv"
    result.artefacts["report"] = results / "summary.md"

    report("embedding the pretraining images and drawing the UMAP (Figure 2)")
    embeddings = embed(
        index.output, inits, out / "embeddings.parquet", image_size=image_size, stem="torchvision",
        device="cpu", workers=workers, seed=seed,
    )
    result.artefacts["embeddings"] = embeddings
    result.artefacts["umap"] = visualize(embeddings, out / "umap.png", seed=seed)
    return result

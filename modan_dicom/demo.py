"""`modan-dicom demo`: the whole pipeline on a synthetic export, on CPU, in minutes.

Each step is the real command's library function with small sizes: synthesise a PACS export, index
it, pretrain MulSupCon and SimCLR briefly. Returns where every artefact is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    workers: int = 2,
    step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run synth → index → pretrain (mulsupcon, simclr) under `out` and return the artefacts.

    Args:
        out: a new or empty folder (a previous demo folder is refused rather than overwritten).
        patients: synthetic patients (about 18 files each).
        image_size: pixels of the training images (small, for a CPU).
        epochs: pretraining epochs per method.
        step: called with a short description before each step.
    """
    from .ingest.index import run_index
    from .synth import synth_export
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
    return result

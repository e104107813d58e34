"""modan-dicom: metadata-driven (modality + anatomy) contrastive pretraining for medical imaging.

The stages, each a function here and a command of the `modan-dicom` CLI::

    build_index(source, output)   # folder / RadImageNet tree / PACS  -> index.parquet
    pretrain(config)              # index.parquet -> runs/NAME/encoder.pt
    benchmark(...)                # encoders -> results/NAME/{runs.csv, summary.md}

Heavy dependencies (torch, MONAI) are imported only when a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, PEP 562)
_EXPORTS = {
    "ModanError": "modan_dicom.errors",
    "Vocabulary": "modan_dicom.vocab",
    "load_vocabulary": "modan_dicom.vocab",
    "build_index": "modan_dicom.ingest",
    "read_index": "modan_dicom.ingest",
    "load_image": "modan_dicom.imaging",
    "synth_export": "modan_dicom.synth",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modan_dicom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

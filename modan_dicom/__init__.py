"""modan-dicom: metadata-driven (modality + anatomy) contrastive pretraining for medical imaging.

The stages, each a function here and a command of the `modan-dicom` CLI::

    build_index(source, output)   # folder / RadImageNet tree  -> index.parquet
    census(url, output)           # a live archive (DICOMweb, DIMSE) -> census.parquet (one row per series)
    pull(url, out)                # a live archive -> de-identified files + out/index.parquet
    pretrain(config)              # index.parquet -> runs/NAME/encoder.pt
    benchmark(...)                # encoders -> results/NAME/{runs.csv, summary.md}

Heavy dependencies (torch, MONAI) are imported only when a name that needs them is used.
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, PEP 562)
_EXPORTS = {
    "ModanError": "modan_dicom.errors",
    "Vocabulary": "modan_dicom.vocab",
    "load_vocabulary": "modan_dicom.vocab",
    "build_index": "modan_dicom.ingest",
    "read_index": "modan_dicom.ingest",
    "census": "modan_dicom.pacs.census",
    "pull": "modan_dicom.pacs.pull",
    "load_image": "modan_dicom.imaging",
    "synth_export": "modan_dicom.synth",
    "PretrainConfig": "modan_dicom.config",
    "pretrain": "modan_dicom.train",
    "load_encoder": "modan_dicom.models",
    "save_encoder": "modan_dicom.models",
    "MulSupConLoss": "modan_dicom.losses",
    "SupConLoss": "modan_dicom.losses",
    "NTXentLoss": "modan_dicom.losses",
    "jaccard_matrix": "modan_dicom.losses",
    "run_demo": "modan_dicom.demo",
    "benchmark": "modan_dicom.evaluate.benchmark",
    "write_report": "modan_dicom.evaluate.report",
    "load_task": "modan_dicom.evaluate.tasks",
    "embed": "modan_dicom.evaluate.embed",
    "visualize": "modan_dicom.evaluate.visualize",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

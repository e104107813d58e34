"""Ingestion: from a folder of files (or a PACS) to the index the trainer reads.

    walk.py        every file under a source, in path order, bounded memory, no symlink loops
    header.py      the needed header values of one file, fast, and its kind (DICOM or not)
    sopclass.py    which SOP classes hold no image
    labels.py      raw header values -> controlled modality / anatomy and multi-hot (shared with the census)
    radimagenet.py labels from RadImageNet folder names
    pseudonym.py   keyed pseudonyms for patient / study / series / instance identifiers and paths
    scrub.py       the file's own name, ID, birth date and UIDs removed from kept free text
    schema.py      the index columns, its local file (paths), Parquet metadata and atomic streaming I/O
    summary.py     counts by status and modality x anatomy, most frequent unmapped raw values
    index.py       build_index / run_index: the parallel, incremental, atomic run

Names are imported lazily so that this package (like `modan_dicom`) imports neither torch nor the
vocabulary until they are used.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "build_index": "modan_dicom.ingest.index",
    "run_index": "modan_dicom.ingest.index",
    "IndexResult": "modan_dicom.ingest.index",
    "read_index": "modan_dicom.ingest.schema",
    "read_index_meta": "modan_dicom.ingest.schema",
    "read_index_metadata": "modan_dicom.ingest.schema",
    "index_axes": "modan_dicom.ingest.schema",
    "resolve_index_root": "modan_dicom.ingest.schema",
    "subset_index": "modan_dicom.ingest.schema",
    "local_path": "modan_dicom.ingest.schema",
    "IndexMeta": "modan_dicom.ingest.schema",
    "read_header": "modan_dicom.ingest.header",
    "walk": "modan_dicom.ingest.walk",
    "summarize": "modan_dicom.ingest.summary",
    "IndexSummary": "modan_dicom.ingest.summary",
    "SummaryBuilder": "modan_dicom.ingest.summary",
    "Pseudonymizer": "modan_dicom.ingest.pseudonym",
    "resolve_salt": "modan_dicom.ingest.pseudonym",
    "resolve_labels": "modan_dicom.ingest.labels",
    "Labels": "modan_dicom.ingest.labels",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""Talking to a PACS: census, pull, de-identification.

    modan_dicom.census(url, "census.parquet")        # what the archive holds, one row per series
    modan_dicom.pull(url, "pulled/", per_series=1)   # a de-identified training set + pulled/index.parquet

`url` is a DICOMweb root (``http(s)://…/dicom-web``) or ``dimse://CALLED_AET@HOST:PORT``.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "run_census": "modan_dicom.pacs.census",
    "run_pull": "modan_dicom.pacs.pull",
    "parse_address": "modan_dicom.pacs.address",
    "open_archive": "modan_dicom.pacs.archive",
    "Deidentifier": "modan_dicom.pacs.deidentify",
    "LocalOrthanc": "modan_dicom.pacs.orthanc",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

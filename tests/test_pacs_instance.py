"""A retrieved instance counts only when it arrived whole, with or without file meta information
(archives store and send some files as bare datasets, as old exports hold them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from test_ingest_support import make_dataset, write_dicom

from modan_dicom.pacs.instance import Incomplete, whole_instance


@pytest.mark.parametrize("syntax,meta", [(ExplicitVRLittleEndian, True), (ImplicitVRLittleEndian, True),
                                         (ImplicitVRLittleEndian, False), (ExplicitVRLittleEndian, False)])
def test_whole_instances_pass_and_cut_ones_do_not(tmp_path: Path, syntax: str, meta: bool) -> None:
    ds = make_dataset(modality="CT")
    data = write_dicom(tmp_path / "im.dcm", ds, transfer_syntax=syntax, preamble=meta, meta=meta).read_bytes()
    got = whole_instance(data, str(ds.SOPInstanceUID))
    assert got.SOPInstanceUID == ds.SOPInstanceUID and got.PixelData == ds.PixelData
    for cut in (len(data) - 1, len(data) - 7, len(data) // 2):  # (a cut between two elements before
        # the image module leaves a well-formed dataset: `whole_instance` documents that limit)
        with pytest.raises(Incomplete):
            whole_instance(data[:cut], str(ds.SOPInstanceUID))
    with pytest.raises(Incomplete, match="another instance"):
        whole_instance(data, "1.2.3.4")

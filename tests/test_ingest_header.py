"""read_header: real DICOM files in every common encoding, junk, truncation, non-image objects."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    BasicTextSRStorage,
    ComprehensiveSRStorage,
    RTDoseStorage,
    SegmentationStorage,
)

from modan_dicom.ingest import header as header_mod
from modan_dicom.ingest.header import read_header, read_header_pydicom, sniff, study_month
from modan_dicom.ingest.sopclass import is_non_image_sop_class
from test_ingest_support import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    make_dataset,
    write_dicom,
    write_sr,
)

ENCODINGS = [
    pytest.param(dict(transfer_syntax=ExplicitVRLittleEndian), id="explicit-le"),
    pytest.param(dict(transfer_syntax=ImplicitVRLittleEndian), id="implicit-le"),
    pytest.param(dict(transfer_syntax=ExplicitVRBigEndian), id="explicit-be"),
    pytest.param(dict(transfer_syntax=DeflatedExplicitVRLittleEndian), id="deflated"),
    pytest.param(dict(transfer_syntax=JPEGBaseline8Bit), id="jpeg-encapsulated"),
    pytest.param(dict(transfer_syntax=ExplicitVRLittleEndian, preamble=False), id="no-preamble-meta"),
    pytest.param(dict(transfer_syntax=ImplicitVRLittleEndian, preamble=False, meta=False), id="bare-implicit"),
    pytest.param(dict(transfer_syntax=ExplicitVRLittleEndian, preamble=False, meta=False), id="bare-explicit"),
    pytest.param(dict(transfer_syntax=ExplicitVRBigEndian, preamble=False, meta=False), id="bare-big-endian"),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_gives_the_written_values(tmp_path: Path, encoding: dict) -> None:
    ds = make_dataset(
        modality="MR", body_part="", series_description="COR T1 L KNEE", protocol_name="KNEE ROUTINE",
        study_description="MRI KNEE LEFT", patient_id="PID-77", study_date="20210709",
        anatomic_region=[("SCT", "72696002", "Knee")], rows=12, columns=20, frames=3,
        undefined_sequence=True, private_bytes=20_000,  # pushes later tags past the first window
    )
    expected = {
        "Modality": "MR", "SeriesDescription": "COR T1 L KNEE", "ProtocolName": "KNEE ROUTINE",
        "StudyDescription": "MRI KNEE LEFT", "PatientID": "PID-77", "StudyInstanceUID": ds.StudyInstanceUID,
        "SeriesInstanceUID": ds.SeriesInstanceUID, "SOPInstanceUID": ds.SOPInstanceUID,
        "Rows": 12, "Columns": 20, "NumberOfFrames": 3, "Laterality": "L", "Manufacturer": "ACME",
        "ManufacturerModelName": "Scanner 3000", "StudyMonth": "2021-07",
        "AnatomicRegion": (("SCT", "72696002", "Knee"),), "kind": "dicom", "image": True,
    }
    path = write_dicom(tmp_path / "file", ds, **encoding)
    got = read_header(path)
    assert {k: got[k] for k in expected} == expected
    assert got["BodyPartExamined"] is None  # blank is missing, not ""
    if encoding.get("meta", True):
        assert got["TransferSyntaxUID"] == encoding["transfer_syntax"]
    assert got == read_header_pydicom(path)  # the reference reader agrees on every value


def test_no_pixel_data_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4 MB image is classified from a few kilobytes: pread never asks for the pixel data."""
    path = write_dicom(tmp_path / "big.dcm", rows=2048, columns=2048)
    asked: list[int] = []
    real = header_mod.os.pread

    def spy(fd: int, n: int, offset: int) -> bytes:
        asked.append(n)
        return real(fd, n, offset)

    monkeypatch.setattr(header_mod.os, "pread", spy)
    got = read_header(path)
    assert got["image"] is True and got["Rows"] == 2048
    assert path.stat().st_size > 4_000_000 and sum(asked) <= 3 * header_mod._WINDOW


def test_junk_is_not_dicom_and_never_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "notes.txt": b"Patient list\nnothing to see here\n" * 20,
        "image.png": b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200),
        "empty": b"",
        "tiny": b"DI",
        "zeros.bin": bytes(4096),  # 128 zero bytes but no DICM marker
        "fake_group8": struct.pack("<HH", 0x0008, 0x0016) + b"ZZ" + b"\xff\xff" + b"x" * 40,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a non-DICOM file was parsed")

    monkeypatch.setattr(header_mod, "_parse", forbidden)
    monkeypatch.setattr(header_mod, "read_header_pydicom", forbidden)
    for name in files:
        got = read_header(tmp_path / name)
        assert got["kind"] == "not_dicom", name
        assert got["Modality"] is None


def test_sniff_accepts_plausible_bare_datasets_only() -> None:
    implicit = struct.pack("<HHL", 0x0008, 0x0005, 10) + b"ISO_IR 100"
    explicit = struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 26) + b"1" * 26
    meta = struct.pack("<HH2sH", 0x0002, 0x0000, b"UL", 4) + struct.pack("<L", 90)
    assert sniff(implicit, 100) == "bare"
    assert sniff(explicit, 100) == "bare"
    assert sniff(meta, 100) == "bare"
    assert sniff(struct.pack("<HHL", 0x0008, 0x0005, 10_000) + b"x", 100) is None  # longer than the file
    assert sniff(struct.pack("<HHL", 0x0008, 0x7777, 4) + b"x" * 8, 100) is None  # unknown tag
    assert sniff(struct.pack("<HHL", 0x0010, 0x0010, 4) + b"x" * 8, 100) is None  # not group 2 / 8
    assert sniff(b"\x89PNG\r\n\x1a\n" + bytes(100), 108) is None


@pytest.mark.parametrize("cut", ["header", "pixels", "fragments"])
def test_truncated_files_are_errors_with_a_reason(tmp_path: Path, cut: str) -> None:
    ts = JPEGBaseline8Bit if cut == "fragments" else ExplicitVRLittleEndian
    path = write_dicom(tmp_path / "whole.dcm", transfer_syntax=ts, rows=64, columns=64)
    data = path.read_bytes()
    pixel_start = data.rfind(b"\xe0\x7f\x10\x00")
    cut_at = {"header": pixel_start // 2, "pixels": pixel_start + 500, "fragments": len(data) - 300}[cut]
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(data[:cut_at])
    got = read_header(broken)
    assert got["kind"] == "error"
    assert "truncated" in got["error"] and "\n" not in got["error"]
    assert read_header(path)["kind"] == "dicom"


def test_deflated_file_cut_in_its_header_is_an_error(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "whole.dcm", transfer_syntax=DeflatedExplicitVRLittleEndian,
                       rows=64, columns=64, private_bytes=30_000)
    data = path.read_bytes()
    assert read_header(path)["image"] is True
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(data[:400])  # the meta group and the start of the deflated dataset
    got = read_header(broken)
    assert got["kind"] == "error" and "truncated" in got["error"]


def test_unknown_vr_in_the_dataset_is_an_error_row(tmp_path: Path) -> None:
    # A corrupt VR makes the fast walker hand over to pydicom, which raises on it: one error row.
    path = write_dicom(tmp_path / "whole.dcm", series_description="AX T2 KNEE", rows=16, columns=16)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x08\x00\x3e\x10")  # (0008,103E) Series Description, explicit VR LO
    assert data[at + 4:at + 6] == b"LO"
    data[at + 4:at + 6] = b"\x01\x02"
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(bytes(data))
    got = read_header(broken)
    assert got["kind"] == "error" and got["error"].startswith("unreadable DICOM") and "\n" not in got["error"]
    assert read_header(path)["SeriesDescription"] == "AX T2 KNEE"


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    got = read_header(tmp_path / "missing.dcm")
    assert got["kind"] == "error" and got["error"].startswith("cannot open")


def test_structured_report_and_dicomdir_are_not_images(tmp_path: Path) -> None:
    sr = read_header(write_sr(tmp_path / "sr.dcm"))
    assert sr["kind"] == "dicom" and sr["image"] is False and sr["Modality"] == "SR"
    assert sr["SOPClassUID"] == BasicTextSRStorage
    assert not header_mod.is_image(sr)

    from pydicom.fileset import FileSet

    ds = make_dataset()
    ds.StudyTime, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "101010", "1", 1, 1
    write_dicom(tmp_path / "image.dcm", ds)
    fs = FileSet()
    fs.add(ds)
    fs.write(tmp_path / "media")
    dicomdir = read_header(tmp_path / "media" / "DICOMDIR")
    assert dicomdir["kind"] == "dicom" and dicomdir["image"] is False
    assert dicomdir["SOPClassUID"] == header_mod.MEDIA_STORAGE_DIRECTORY


def test_images_with_a_non_image_sop_class_are_not_images(tmp_path: Path) -> None:
    got = read_header(write_dicom(tmp_path / "seg.dcm", sop_class=SegmentationStorage, modality="SEG"))
    assert got["image"] is True and not header_mod.is_image(got)
    for uid in (BasicTextSRStorage, ComprehensiveSRStorage, RTDoseStorage, SegmentationStorage):
        assert is_non_image_sop_class(uid)
    assert not is_non_image_sop_class("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert not is_non_image_sop_class("1.2.840.10008.5.1.4.1.1.1.1")  # DX for presentation
    assert not is_non_image_sop_class("1.2.840.10008.5.1.4.1.1.6.2")  # Enhanced US Volume
    assert not is_non_image_sop_class("1.2.3.4.private")


@pytest.mark.parametrize("charset, text", [
    ("ISO_IR 192", "Kniegelenk – Übersicht 膝"),
    ("ISO_IR 100", "Épaule gauche"),
    ("ISO 2022 IR 6\\ISO 2022 IR 87", "膝MRI"),
])
def test_character_sets(tmp_path: Path, charset: str, text: str) -> None:
    path = write_dicom(tmp_path / "cs.dcm", charset=charset, series_description=text)
    got = read_header(path)
    assert got["SeriesDescription"] == text
    assert got == read_header_pydicom(path)


def test_study_month_keeps_no_day() -> None:
    assert study_month("20190412") == "2019-04"
    assert study_month("2019.04.12") == "2019-04"
    assert study_month("") is None and study_month("2019") is None and study_month("20191312") is None


def test_fast_reader_matches_pydicom_on_many_variants(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(30):
        kwargs = dict(
            modality=str(rng.choice(["CT", "MR", "US", "DX"])),
            body_part=str(rng.choice(["", "KNEE", "ABDOMEN", "CSPINE"])),
            series_description=str(rng.choice(["AX T2", "", "SAG STIR C-SPINE"])),
            private_bytes=int(rng.choice([0, 100, 9000])),
            undefined_sequence=bool(rng.integers(2)),
            anatomic_region=[("SCT", "818981001", "Abdomen")] if rng.integers(2) else None,
            frames=int(rng.integers(1, 4)) if rng.integers(2) else None,
        )
        ts = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian][i % 3]
        path = write_dicom(tmp_path / f"v{i}", transfer_syntax=ts, **kwargs)
        assert read_header(path) == read_header_pydicom(path), kwargs

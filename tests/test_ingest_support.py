"""Small real DICOM files for the ingest tests, written with pydicom, and trees deeper than PATH_MAX
(no tests in this module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

FAKE_PATIENT_NAME = "Zyxwvut^Quorra"
FAKE_BIRTH_DATE = "19411231"
FAKE_ADDRESS = "17 Nowhere Lane, Faketown"


def make_dataset(
    *,
    modality: str = "CT",
    body_part: str | None = "CHEST",
    series_description: str | None = "AX LUNG 1.25",
    study_description: str | None = "CT CHEST",
    protocol_name: str | None = None,
    patient_id: str = "PID-0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_class: str = CTImageStorage,
    study_date: str = "20190412",
    charset: str | None = None,
    anatomic_region: list[tuple[str, str, str]] | None = None,
    pixels: bool = True,
    rows: int = 16,
    columns: int = 16,
    frames: int | None = None,
    private_bytes: int = 0,
    undefined_sequence: bool = False,
) -> Dataset:
    """A dataset with the tags the index reads (and some PHI it must drop)."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = study_date
    ds.Modality = modality
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Scanner 3000"
    if study_description is not None:
        ds.StudyDescription = study_description
    if series_description is not None:
        ds.SeriesDescription = series_description
    if anatomic_region:
        items = []
        for scheme, code, meaning in anatomic_region:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, scheme, meaning
            items.append(item)
        ds.AnatomicRegionSequence = Sequence(items)
    if undefined_sequence:  # sequences (and items) of undefined length, nested one level
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = generate_uid()
        inner = Dataset()
        inner.CodeValue = "113076"
        ref.PurposeOfReferenceCodeSequence = Sequence([inner])
        ref["PurposeOfReferenceCodeSequence"].is_undefined_length = True
        ds.ReferencedImageSequence = Sequence([ref])
        ds["ReferencedImageSequence"].is_undefined_length = True
        if "AnatomicRegionSequence" in ds:
            ds["AnatomicRegionSequence"].is_undefined_length = True
    if private_bytes:
        ds.add_new(0x00090010, "LO", "ACME PRIVATE")
        ds.add_new(0x00091001, "OB", b"\x01" * private_bytes)
    ds.PatientName = FAKE_PATIENT_NAME
    ds.PatientID = patient_id
    ds.PatientBirthDate = FAKE_BIRTH_DATE
    ds.PatientAddress = FAKE_ADDRESS
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if protocol_name is not None:
        ds.ProtocolName = protocol_name
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Laterality = "L"
    if pixels:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        if frames is not None:
            ds.NumberOfFrames = frames
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = np.arange(rows * columns * (frames or 1), dtype=np.uint8).tobytes()
    return ds


def write_dicom(
    path: Path,
    ds: Dataset | None = None,
    *,
    transfer_syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    meta: bool = True,
    **kwargs: Any,
) -> Path:
    """Write `ds` (or `make_dataset(**kwargs)`) to `path` in the given encoding.

    preamble=False writes no 128-byte preamble / DICM marker; meta=False also drops the file
    meta group (a bare dataset, as old exports and some PACS dumps hold)."""
    ds = ds if ds is not None else make_dataset(**kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if transfer_syntax == JPEGBaseline8Bit:
        fake_jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
        ds.PixelData = encapsulate([fake_jpeg, fake_jpeg[:600]])
        ds["PixelData"].VR = "OB"
    if meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    implicit = transfer_syntax == ImplicitVRLittleEndian
    little = transfer_syntax != ExplicitVRBigEndian
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False, implicit_vr=implicit, little_endian=little)
        if meta:  # pydicom writes the meta group behind a preamble; strip the first 132 bytes
            data = path.read_bytes()
            if data[128:132] == b"DICM":
                path.write_bytes(data[132:])
    return path


def write_sr(path: Path, **kwargs: Any) -> Path:
    """A Basic Text SR (no pixel data)."""
    ds = make_dataset(modality="SR", sop_class=BasicTextSRStorage, pixels=False, **kwargs)
    ds.ContentSequence = Sequence([Dataset()])
    ds.ContentSequence[0].TextValue = "Findings: none"
    ds.ContentSequence[0].ValueType = "TEXT"
    return write_dicom(path, ds)


__all__ = [
    "DeflatedExplicitVRLittleEndian", "ExplicitVRBigEndian", "ExplicitVRLittleEndian",
    "ImplicitVRLittleEndian", "JPEGBaseline8Bit", "make_dataset", "write_dicom", "write_sr",
]


def deep_tree(root: Path, depth: int, name_bytes: int = 200) -> list[tuple[str, bool]]:
    """Folders `d0xx…/d1xx…/…` (`name_bytes` each) `depth` levels deep under `root`, one file `f`
    ("not dicom") in each, made through folder descriptors, past PATH_MAX. Returns each file's
    path relative to `root` and whether its absolute path is 4096 bytes or longer. (shutil.rmtree
    removes it: it walks by descriptors too.)"""
    files = []
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    rel = ""
    try:
        for level in range(depth):
            name = f"d{level}".ljust(name_bytes, "x")
            os.mkdir(name, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
            rel += name + "/"
            out = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, b"not dicom")
            os.close(out)
            files.append((rel + "f", len(os.fsencode(str(root))) + 1 + len(rel) + 1 >= 4096))
    finally:
        os.close(fd)
    return files

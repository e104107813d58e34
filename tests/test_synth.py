"""The synthetic PACS export: determinism, the manifest as ground truth, header and pixel content,
deliberately broken files, fake PHI, the RadImageNet layout and the `synth` command."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.uid import ImplicitVRLittleEndian

from modan_dicom.cli import main
from modan_dicom.errors import OutputError
from modan_dicom.synth import MANIFEST_COLUMNS, patients_for_files, synth_export
from modan_dicom.synth.catalog import NO_ANATOMY, REGIONS
from modan_dicom.synth.encode import LOSSY, TRANSFER_SYNTAXES
from modan_dicom.synth.export import SOP, truncate
from modan_dicom.synth.pixels import REGIONS as PIXEL_REGIONS
from modan_dicom.synth.pixels import Look, synth_pixels

REFERENCE_CLASSES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "radimagenet_classes.csv"
XR_CODES = {"CR", "DX", "RF"}
# decoded by SimpleITK, not by pydicom's handlers (see encode.py)
PYDICOM_CANNOT_DECODE = {"j2k_part2_lossless"}


def _read(root: Path, row: pd.Series, **kwargs: object) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(root / row.path, force=not row.preamble, **kwargs)
    if not row.preamble:  # a raw dataset carries no transfer syntax: implicit VR little endian
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synth") / "export"
    return root, synth_export(root)


@pytest.fixture(scope="module")
def images(export: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    return export[1][export[1]["status"].isin(["ok", "unmapped"])]


# ---- the manifest --------------------------------------------------------------------------------


def test_manifest_describes_every_file_exactly_once(export: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = export
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert manifest["path"].is_unique
    assert set(manifest["path"]) == on_disk
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    written = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(written["path"]) == list(manifest["path"])
    assert set(written["status"]) == {"ok", "unmapped", "non_image", "not_dicom", "error"}
    kinds = dict(zip(manifest["path"], manifest["kind"]))
    assert kinds["manifest.csv"] == "manifest" and kinds["phi.json"] == "phi"
    assert (manifest.loc[manifest["path"].isin(["manifest.csv", "phi.json"]), "status"] == "not_dicom").all()


def test_default_export_covers_the_catalog(images: pd.DataFrame) -> None:
    assert set(images["modality"]) == {"CT", "MR", "US", "XR"}
    for region in REGIONS.values():
        present = set(images.loc[images["region"] == region.name, "modality"])
        expected = {"XR" if m == "XR" else m for m in region.modalities}
        assert expected <= present, (region.name, expected - present)
        for i in range(len(region.variants)):
            assert (images["variant"] == f"{region.name}/{i}").any(), f"{region.name}/{i}"
    no_anatomy = images[images["variant"] == "NO_ANATOMY"]
    assert len(no_anatomy) >= 3 and (no_anatomy["anatomy"] == "").all() and (no_anatomy["status"] == "unmapped").all()
    assert set(images.loc[images["modality"] == "XR", "modality_code"]) == XR_CODES


def test_expected_labels_follow_the_catalog(images: pd.DataFrame) -> None:
    for row in images.itertuples():
        variant = NO_ANATOMY if row.variant == "NO_ANATOMY" else REGIONS[row.variant.split("/")[0]].variants[
            int(row.variant.split("/")[1])]
        assert row.anatomy == variant.anatomy
        assert row.anatomy_axis == (variant.axis or "")
        assert row.anatomy_source in (variant.source, "AnatomicRegion")
        in_profile = variant.axis is not None and row.modality in ("CT", "MR", "US")
        assert row.status == ("ok" if in_profile else "unmapped")
        assert row.modality_axis == (row.modality if row.modality != "XR" else "")
    assert (images["anatomy_source"] == "AnatomicRegion").sum() >= 3


# ---- headers ---------------------------------------------------------------------------------------


def test_every_image_header_reads_and_matches_the_manifest(export: tuple[Path, pd.DataFrame],
                                                           images: pd.DataFrame) -> None:
    root, _ = export
    assert set(TRANSFER_SYNTAXES) <= set(images["syntax"])
    for row in images.itertuples():
        ds = _read(root, row, stop_before_pixels=True)
        assert ds.file_meta.TransferSyntaxUID == TRANSFER_SYNTAXES[row.syntax], row.path
        assert (ds.Modality, ds.Rows, ds.Columns) == (row.modality_code, row.rows, row.columns)
        assert int(ds.get("NumberOfFrames", 1)) == row.n_frames
        assert ds.SOPClassUID == row.sop_class and ds.PhotometricInterpretation == row.photometric
        assert ds.get("BodyPartExamined", "") == row.body_part
        assert ds.get("SeriesDescription", "") == row.series_description
        assert ds.get("ProtocolName", "") == row.protocol_name
        assert ds.get("StudyDescription", "") == row.study_description
        if row.anatomy_source == "AnatomicRegion":
            assert ds.AnatomicRegionSequence[0].CodingSchemeDesignator == "SCT"
        for elem in ds.iterall():  # every value converts
            _ = elem.value
    multi = images[images["n_frames"] > 1]
    assert {"US", "RF"} <= set(multi["modality_code"])
    assert images.loc[images["photometric"] == "MONOCHROME1", "modality"].eq("XR").all()
    assert {"RGB", "YBR_FULL", "YBR_FULL_422", "MONOCHROME1", "MONOCHROME2"} <= set(images["photometric"])


def test_files_without_extension_preamble_or_ascii_names(export: tuple[Path, pd.DataFrame],
                                                         images: pd.DataFrame) -> None:
    root, _ = export
    names = images["path"].str.rsplit("/", n=1).str[-1]
    assert (~names.str.contains(".", regex=False)).sum() >= 10
    assert any(not n.isascii() for n in names) and "膝.dcm" in set(names) and "Thorax_Lunge_ü.dcm" in set(names)
    raw = images[images["preamble"] == 0]
    assert len(raw) >= 3 and (raw["syntax"] == "implicit_le").all()
    for row in raw.itertuples():
        head = (root / row.path).read_bytes()[:132]
        assert head[128:132] != b"DICM" and head[:2] == b"\x08\x00"  # starts with a group 0008 element


def test_identifiers_are_consistent_within_patient_study_and_series(export: tuple[Path, pd.DataFrame],
                                                                    images: pd.DataFrame) -> None:
    root, _ = export
    seen: dict[str, dict[tuple, set[str]]] = {"PatientID": {}, "StudyInstanceUID": {}, "SeriesInstanceUID": {}}
    sops = set()
    for row in images.itertuples():
        ds = _read(root, row, stop_before_pixels=True)
        for keyword, key in (("PatientID", (row.patient,)), ("StudyInstanceUID", (row.patient, row.study)),
                             ("SeriesInstanceUID", (row.patient, row.study, row.series))):
            seen[keyword].setdefault(key, set()).add(str(ds[keyword].value))
        sops.add(ds.SOPInstanceUID)
    assert len(sops) == len(images)
    for keyword, groups in seen.items():
        assert all(len(values) == 1 for values in groups.values()), keyword
        assert len({v for values in groups.values() for v in values}) == len(groups), keyword  # distinct groups


# ---- broken and other files ---------------------------------------------------------------------


def test_truncated_files_fail_a_full_read(export: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = export
    broken = manifest[manifest["status"] == "error"]
    assert len(broken) >= 3 and (broken["kind"] == "truncated").all()
    header_errors = 0
    for row in broken.itertuples():
        data = (root / row.path).read_bytes()
        assert data[128:132] == b"DICM" and b"\xe0\x7f\x10\x00" not in data  # DICOM, cut before the pixels
        with pytest.raises(Exception):
            pydicom.dcmread(io.BytesIO(data)).pixel_array  # noqa: B018
        try:
            pydicom.dcmread(io.BytesIO(data))
        except Exception:  # noqa: BLE001
            header_errors += 1
    assert header_errors >= 2


def test_truncate_cuts_inside_the_header() -> None:
    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SOP["CT"], "1.2.3.4"
    ds.PatientName = "X"
    item = pydicom.Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    ds.ReferencedImageSequence = [item]
    ds.add_new(0x00291010, "OB", bytes(1000))
    ds.add_new(0x7FE00010, "OB", bytes(64))  # Pixel Data
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    cut = truncate(data)
    assert 132 < len(cut) < data.find(b"\xe0\x7f\x10\x00")
    with pytest.raises(Exception):
        pydicom.dcmread(io.BytesIO(cut))
    value_cut = truncate(data, inside_value=True)
    assert len(value_cut) < data.find(b"\xe0\x7f\x10\x00") and truncate(data) == cut  # deterministic
    assert "PixelData" not in pydicom.dcmread(io.BytesIO(value_cut))


def test_non_image_objects_and_files_that_are_not_dicom(export: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = export
    non_image = manifest[manifest["status"] == "non_image"]
    assert {"sr", "presentation_state", "rtstruct", "dicomdir"} == set(non_image["kind"])
    assert (non_image["kind"] == "sr").sum() >= 3
    for row in non_image.itertuples():
        ds = pydicom.dcmread(root / row.path)
        sop_class = ds.get("SOPClassUID", ds.file_meta.MediaStorageSOPClassUID)  # a DICOMDIR: file meta only
        assert "PixelData" not in ds and sop_class == row.sop_class
    sr = non_image[non_image["kind"] == "sr"].iloc[0]
    assert pydicom.dcmread(root / sr.path).Modality == "SR" and sr.sop_class == SOP["SR"]
    assert "DICOMDIR" in set(non_image["path"])
    not_dicom = manifest[manifest["status"] == "not_dicom"]
    assert {"text", "jpeg", "junk", "manifest", "phi"} == set(not_dicom["kind"])
    for row in not_dicom.itertuples():
        data = (root / row.path).read_bytes()
        assert data[128:132] != b"DICM"
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(root / row.path)
    jpeg = not_dicom[not_dicom["kind"] == "jpeg"].iloc[0]
    assert Image.open(root / jpeg.path).format == "JPEG"
    junk = not_dicom[not_dicom["kind"] == "junk"].iloc[0]
    assert "." not in junk.path.rsplit("/", 1)[-1]


# ---- fake PHI ------------------------------------------------------------------------------------


def test_fake_phi_is_in_the_files_and_listed_but_not_in_the_manifest(export: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = export
    phi = json.loads((root / "phi.json").read_text(encoding="utf-8"))
    assert isinstance(phi, list) and len(phi) > 50 and all(isinstance(v, str) and v for v in phi)
    assert all("ZZPHI" in v or re.fullmatch(r"(19[3-7]\d)\d{4}", v) for v in phi), phi
    assert any(not v.isascii() for v in phi)  # a UTF-8 name (Specific Character Set ISO_IR 192)
    blobs = [(root / p).read_bytes() for p in manifest.loc[manifest["kind"].isin(["image", "sr"]), "path"]]
    blob = b"\n".join(blobs)
    for value in phi:
        assert value.encode("utf-8") in blob or value.encode("latin-1", "ignore") in blob, value
    manifest_text = (root / "manifest.csv").read_text(encoding="utf-8")
    assert "ZZPHI" not in manifest_text
    assert not any(v in manifest_text for v in phi)


# ---- pixels ---------------------------------------------------------------------------------------


def _pixels(root: Path, row: pd.Series) -> tuple[pydicom.Dataset, np.ndarray]:
    ds = _read(root, row)
    return ds, ds.pixel_array


def test_every_decodable_image_decodes_with_its_shape(export: tuple[Path, pd.DataFrame], images: pd.DataFrame) -> None:
    root, _ = export
    for row in images[~images["syntax"].isin(PYDICOM_CANNOT_DECODE)].itertuples():
        _, arr = _pixels(root, row)
        colour = row.photometric in ("RGB", "YBR_FULL", "YBR_FULL_422")
        shape = (row.rows, row.columns) + ((3,) if colour else ())
        assert arr.shape == ((row.n_frames,) + shape if row.n_frames > 1 else shape), row.path


def test_pixel_statistics_carry_the_modality(export: tuple[Path, pd.DataFrame], images: pd.DataFrame) -> None:
    root, _ = export
    readable = images[~images["syntax"].isin(PYDICOM_CANNOT_DECODE)]
    for row in readable[readable["modality_code"] == "CT"].itertuples():
        ds, arr = _pixels(root, row)
        hu = arr * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert float(ds.RescaleIntercept) == -1024 and ds.RescaleType == "HU" and "WindowCenter" in ds
        top = 3071 if row.syntax in LOSSY else 3000
        assert hu.min() >= -1024 and hu.max() <= top, row.path
        assert (hu < -900).mean() > 0.1 and (hu > 300).mean() > 0.002, row.path  # air and bone
        assert ((hu > -150) & (hu < 100)).mean() > 0.05, row.path  # fat and soft tissue
    for row in readable[readable["modality_code"] == "MR"].itertuples():
        ds, arr = _pixels(root, row)
        assert "RescaleType" not in ds and arr.min() >= 0
        if row.region in ("brain", "abdomen", "knee"):  # air around the body: a Rician noise floor, no HU offset
            corner = arr[:6, :6].astype(float)
            assert 0 < corner.mean() < 0.2 * np.percentile(arr, 99), row.path
    for row in readable[readable["modality_code"] == "US"].itertuples():
        ds, arr = _pixels(root, row)
        assert ds.BitsStored == 8 and arr.dtype == np.uint8
        frames = arr if row.n_frames > 1 else arr[None]
        grey = frames.mean(axis=-1) if frames.ndim == 4 else frames
        assert grey[:, :4, :4].max() <= 8, row.path  # black outside the sector (lossy codecs: a few levels)
        centre = grey[:, row.rows // 3: 2 * row.rows // 3, row.columns // 3: 2 * row.columns // 3]
        assert centre.mean() > 20 and centre.std() > 8, row.path  # bright speckle inside
    xr = readable[readable["modality"] == "XR"]
    assert set(xr.loc[xr["modality_code"] != "RF", "bits_stored"]) <= {12, 14, 16}
    assert set(xr.loc[xr["modality_code"] != "RF", "bits_stored"]) >= {12, 16}


def test_phantoms_differ_by_modality_and_region() -> None:
    def ct(region: str) -> np.ndarray:
        image = synth_pixels(region, "CT", 96, 96, series_seed=1, seed=2)
        return image.pixels * image.rescale[0] + image.rescale[1]

    lung, abdomen, brain = ct("lung"), ct("abdomen"), ct("brain")
    lung_density = (-950, -700)
    assert ((lung > lung_density[0]) & (lung < lung_density[1])).mean() > 0.1  # two dark lung fields
    assert ((abdomen > lung_density[0]) & (abdomen < lung_density[1])).mean() < 0.05
    rim = brain[48, :20]  # the skull ring crosses the left half of the middle row
    assert rim.max() > 700
    us = synth_pixels("thyroid", "US", 72, 96, series_seed=1, seed=2).pixels
    assert us.dtype == np.uint8 and us[0, 0] == 0 and us[0, -1] == 0
    speckle = us[30:50, 20:40].astype(float)
    assert speckle.std() / max(speckle.mean(), 1) > 0.15
    mr = synth_pixels("knee", "MR", 96, 96, series_seed=1, seed=2, look=Look(weighting="T1")).pixels
    mr_fs = synth_pixels("knee", "MR", 96, 96, series_seed=1, seed=2, look=Look(weighting="T2FS")).pixels
    assert mr.mean() > 1.2 * mr_fs.mean()  # fat saturation darkens the marrow and fat
    xr1 = synth_pixels("knee", "XR", 96, 80, series_seed=1, seed=2, look=Look(monochrome1=True, bits=12)).pixels
    xr2 = synth_pixels("knee", "XR", 96, 80, series_seed=1, seed=2, look=Look(monochrome1=False, bits=12)).pixels
    assert np.array_equal(xr1.astype(int), 4095 - xr2.astype(int))
    fluoro = synth_pixels("spine", "XR", 64, 64, series_seed=1, seed=2, frames=4, look=Look(fluoro=True)).pixels
    assert fluoro.shape == (4, 64, 64) and fluoro[:, 0, 0].max() == 0 and not np.array_equal(fluoro[0], fluoro[3])
    for region in PIXEL_REGIONS:
        a = synth_pixels(region, "MR", 48, 48, series_seed=5, seed=6).pixels
        assert np.array_equal(a, synth_pixels(region, "MR", 48, 48, series_seed=5, seed=6).pixels)


# ---- determinism and the output folder ---------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    small = dict(n_patients=3, image_size=32)
    synth_export(tmp_path / "a", seed=7, **small)
    synth_export(tmp_path / "b", seed=7, **small)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) > 50
    synth_export(tmp_path / "c", seed=8, **small)
    c = _digest(tmp_path / "c")
    common = set(a) & set(c)
    assert len(common) > 30 and sum(a[p] != c[p] for p in common) == len(common)
    synth_export(tmp_path / "d", seed=7, workers=2, **small)  # parallel writing: the same bytes
    assert _digest(tmp_path / "d") == a


def test_output_folder_rules(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError):
        synth_export(foreign, n_patients=1, image_size=32)
    assert (foreign / "notes.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1
    out = tmp_path / "export"
    first = synth_export(out, n_patients=2, image_size=32)
    second = synth_export(out, n_patients=1, image_size=32)  # a previous export is replaced, not mixed
    assert len(second) < len(first)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == set(second["path"])
    (out / "PAT0001" / "added_by_user.txt").write_text("x")
    with pytest.raises(OutputError):
        synth_export(out, n_patients=1, image_size=32)
    assert (out / "PAT0001" / "added_by_user.txt").exists()


def test_patients_for_files_sizes_a_benchmark_export() -> None:
    assert patients_for_files(10_000) == 556
    assert patients_for_files(1) == 1


# ---- RadImageNet layout ----------------------------------------------------------------------------


def test_radimagenet_layout(tmp_path: Path) -> None:
    root = tmp_path / "rin"
    manifest = synth_export(root, layout="radimagenet", image_size=32, images_per_class=2, seed=1)
    pngs = manifest[manifest["kind"] == "png"]
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == set(manifest["path"])
    for row in pngs.itertuples():
        parts = row.path.split("/")
        if parts[0] == "US":
            assert len(parts) == 3 and row.label == "/".join(parts[:2])
        else:
            assert parts[0] in ("CT", "MR") and len(parts) == 4 and row.label == "/".join(parts[:3])
        assert row.modality == parts[0] and row.status == "ok" and row.anatomy_source == "folder"
        image = Image.open(root / row.path)
        assert image.format == "PNG" and image.mode == "L" and image.size == (32, 32)
    assert set(pngs["modality"]) == {"CT", "MR", "US"}
    regions = {tuple(p.split("/")[:2]) for p in pngs["path"] if not p.startswith("US/")}
    assert ("MR", "mriabd") in regions and ("CT", "abd") in regions and ("MR", "af") in regions
    assert set(pngs["anatomy_axis"]) == {"abdomen", "lung", "ankle_foot", "brain", "hip", "knee", "shoulder", "spine",
                                         "thyroid"}
    assert pngs.groupby("label").size().eq(2).all()
    quirky = {"MR/brain/pituatary_lesion", "MR/af/achilles_pathology_", "MR/shoulder/ca++_tendinosis"}
    assert quirky <= set(pngs["label"])
    if REFERENCE_CLASSES.exists():  # every class folder is a real one, verbatim
        with open(REFERENCE_CLASSES, encoding="utf-8") as handle:
            real = {"/".join(p for p in (r["modality"], r["anatomy_folder"], r["class_folder"]) if p)
                    for r in csv.DictReader(handle)}
        assert set(pngs["label"]) <= real


# ---- the command line ------------------------------------------------------------------------------


def test_cli_writes_an_export_and_refuses_a_foreign_folder(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(main, ["synth", str(out), "--patients", "1", "--image-size", "32", "--seed", "2"])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert f"{len(manifest)} files" in result.output and "error" in result.output and str(out) in result.output
    again = runner.invoke(main, ["synth", str(out), "--patients", "1", "--image-size", "32", "--seed", "2"])
    assert again.exit_code == 0, again.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.dcm").write_bytes(b"mine")
    refused = runner.invoke(main, ["synth", str(foreign)])
    assert refused.exit_code == 2 and "refusing" in refused.output and "Traceback" not in refused.output
    assert (foreign / "x.dcm").read_bytes() == b"mine"
    rin = runner.invoke(main, ["synth", str(tmp_path / "rin"), "--layout", "radimagenet", "--image-size", "16"])
    assert rin.exit_code == 0 and (tmp_path / "rin" / "US" / "thyroid").is_dir()


def test_variation_scales_the_pixels_not_the_files(tmp_path: Path) -> None:
    from modan_dicom.errors import ConfigError
    from modan_dicom.imaging import load_image

    full = synth_export(tmp_path / "full", seed=3, n_patients=2, image_size=16)
    canonical = synth_export(tmp_path / "canonical", seed=3, n_patients=2, image_size=16, variation=0.0)
    assert full["path"].tolist() == canonical["path"].tolist()
    images = full[(full["kind"] == "image") & (full["status"] == "ok")]["path"]
    differ = [not np.array_equal(load_image(tmp_path / "full" / p), load_image(tmp_path / "canonical" / p))
              for p in images]
    assert sum(differ) > len(differ) // 2
    with pytest.raises(ConfigError, match="variation"):
        synth_export(tmp_path / "bad", n_patients=1, image_size=16, variation=1.5)

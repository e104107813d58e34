"""What an index, a census and an embeddings file may be handed to a collaborator with: no path, no
source folder, and no header text holding the file's own patient name, ID, birth date or UIDs
(issue 13, item 5). The paths live in the local file beside the index, which the pipeline reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydicom.uid import generate_uid
from test_ingest_support import make_dataset, write_dicom

from modan_dicom.evaluate.embed import embed
from modan_dicom.ingest import (
    build_index,
    local_path,
    read_index,
    read_index_meta,
    resolve_index_root,
)
from modan_dicom.ingest.index import run_index
from modan_dicom.ingest.labels import resolve_labels
from modan_dicom.ingest.pseudonym import Pseudonymizer
from modan_dicom.ingest.schema import (
    COLUMNS,
    open_index_writer,
    row_schema,
    rows_to_batch,
)
from modan_dicom.ingest.scrub import REMOVED, scrub_error, scrub_texts
from modan_dicom.pacs.archive import json_to_record
from modan_dicom.pacs.census import EXTRA_FIELDS, SeriesItem, census_rows

pytestmark = pytest.mark.filterwarnings("ignore:The value length")  # hostile files: over-long LO values

SALT = "privacy-salt"
NAME = "Quackenbush^Ottoline^Marie"
PATIENT_ID = "QX7731904"
BIRTH = "19530417"
BIRTH_SPELLINGS = ("19530417", "1953-04-17", "17.04.1953", "1953/04/17", "04/17/1953")
FOLDER = "Quackenbush_Ottoline/QX7731904_1953-04-17"


def _hostile_export(root: Path) -> dict[str, list[str]]:
    """Files whose texts hold their own patient's name, ID, birth date and UIDs, named by SOP
    Instance UID in a folder named after the patient; returns the identifiers planted."""
    study, series = generate_uid(), generate_uid()
    planted: dict[str, list[str]] = {"uids": [study, series], "sops": []}
    for i in range(4):
        ds = make_dataset(
            study_uid=study, series_uid=series, patient_id=PATIENT_ID,
            study_description=f"CT CHEST Ottoline Quackenbush {PATIENT_ID}",
            series_description=f"AX LUNG 1.25 born 17.04.1953 uid {series}",
            protocol_name=f"CHEST QUACKENBUSH^OTTOLINE {study}",
            anatomic_region=[("SCT", "39607008", "Lung of Marie Quackenbush")],
        )
        ds.PatientName, ds.PatientBirthDate = NAME, BIRTH
        ds.Manufacturer = f"ACME {ds.SOPInstanceUID.replace('.', '_')}"  # the instance UID, other separators
        ds.ManufacturerModelName = "Scanner quackenbush-ottoline 1953-04-17"
        planted["sops"].append(ds.SOPInstanceUID)
        write_dicom(root / FOLDER / f"{ds.SOPInstanceUID}.dcm", ds)
    # one the vocabulary cannot place: its raw values end up in the summary's "top unmapped"
    ds = make_dataset(study_uid=study, series_uid=generate_uid(), patient_id=PATIENT_ID, body_part="OTTOLINE",
                      series_description="Quackenbush 1953/04/17", study_description=f"re {PATIENT_ID}",
                      protocol_name=None)
    ds.PatientName, ds.PatientBirthDate = NAME, BIRTH
    planted["uids"].append(ds.SeriesInstanceUID)
    planted["sops"].append(ds.SOPInstanceUID)
    write_dicom(root / FOLDER / "odd" / f"{ds.SOPInstanceUID}", ds)
    return planted


def _secrets(planted: dict[str, list[str]]) -> list[str]:
    return [NAME, "Quackenbush", "Ottoline", "Marie", PATIENT_ID, *BIRTH_SPELLINGS, *planted["uids"],
            *planted["sops"], *FOLDER.split("/")]


def _shareable_text(path: Path) -> str:
    """Every string of every column (nested ones included) and the metadata of a Parquet file,
    decompressed by pyarrow, lower case."""
    table = pq.read_table(path)
    return ("\n".join(map(str, table.to_pylist())) + str(table.schema.metadata)).lower()


def _assert_clean(path: Path, secrets: list[str]) -> None:
    text, raw = _shareable_text(path), path.read_bytes()
    values = [v for v in re.split(r"[\n'\",:{}\[\]()]+", text) if v]
    squashed = [re.sub(r"[\W_]+", "", v) for v in values]  # each value without separators
    for secret in secrets:
        assert secret.lower() not in text, secret
        assert secret.encode() not in raw, secret
        token = re.sub(r"[\W_]+", "", secret.lower())
        if len(token) >= 8:
            assert not any(token in v for v in squashed), secret


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]], Path]:
    root = tmp_path_factory.mktemp("hostile")
    planted = _hostile_export(root / "src")
    out = root / "out" / "index.parquet"
    build_index(root / "src", out, salt=SALT)
    return root / "src", planted, out


def test_the_index_holds_no_path_and_no_identifier_in_any_text(hostile) -> None:
    src, planted, out = hostile
    _assert_clean(out, _secrets(planted) + [str(src)])
    assert pq.read_table(out).column_names == list(COLUMNS)  # no path, size or mtime_ns
    # what was removed, and what was kept around it
    frame = read_index(out, local=False)
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == 4 and set(ok["anatomy"]) == {"lung"}  # labels come from the raw values
    assert set(ok["StudyDescription"]) == {f"CT CHEST {REMOVED} {REMOVED}"}  # "Ottoline Quackenbush" is one
    assert set(ok["SeriesDescription"]) == {f"AX LUNG 1.25 born {REMOVED} uid {REMOVED}"}
    assert set(ok["ProtocolName"]) == {f"CHEST {REMOVED} {REMOVED}"}
    assert set(ok["Manufacturer"]) == {f"ACME {REMOVED}"}
    assert set(ok["ManufacturerModelName"]) == {f"Scanner {REMOVED} {REMOVED}"}
    assert {r[0]["meaning"] for r in ok["AnatomicRegionSequence"]} == {f"Lung of {REMOVED} {REMOVED}"}
    assert set(ok["BodyPartExamined"]) == {"CHEST"} and set(ok["Modality"]) == {"CT"}


def test_the_local_file_gives_the_pipeline_its_paths(hostile, tmp_path: Path) -> None:
    src, planted, out = hostile
    frame = read_index(out)
    assert sorted(frame["path"]) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert frame["file_key"].str.fullmatch(r"fil-[0-9a-f]{20}").all() and frame["file_key"].is_unique
    assert (frame["size"] > 0).all() and resolve_index_root(out) == src.resolve()
    assert read_index_meta(out).source == str(src.resolve())
    # embeddings of the index's images: written from the local paths, holding none of them
    emb = embed(out, {"s": "scratch"}, tmp_path / "embeddings.parquet", image_size=16, device="cpu", workers=1)
    assert pq.read_table(emb).num_rows == 4
    _assert_clean(emb, _secrets(planted) + [str(src), str(out.parent)])


def test_the_summary_shows_only_scrubbed_values(hostile, tmp_path: Path) -> None:
    src, planted, _ = hostile
    result = run_index(src, tmp_path / "index.parquet", salt=SALT)
    unmapped = result.summary.top_unmapped
    shown = json.dumps(unmapped).lower()
    assert unmapped["SeriesDescription"] == [(f"{REMOVED} {REMOVED}", 1)]
    assert unmapped["StudyDescription"] == [(f"re {REMOVED}", 1)]
    for secret in _secrets(planted):
        assert secret.lower() not in shown, secret


def test_incremental_runs_reuse_rows_through_the_local_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _hostile_export(src)
    out = src / "index.parquet"  # inside the source: neither file of the index is indexed
    first = run_index(src, out, salt=SALT)
    assert first.files == 5 and first.read == 5
    again = run_index(src, out, salt=SALT)
    assert (again.read, again.reused) == (0, 5) and again.warnings == []
    assert again.frame.drop(columns=["mtime_ns"]).equals(first.frame.drop(columns=["mtime_ns"]))
    # without its local file the index is still readable (shareable view) and is rebuilt in full
    local_path(out).unlink()
    assert len(read_index(out, local=False)) == 5
    rebuilt = run_index(src, out, salt=SALT)
    assert (rebuilt.read, rebuilt.reused) == (5, 0)
    assert any("local file" in w for w in rebuilt.warnings)
    assert sorted(rebuilt.frame["path"]) == sorted(first.frame["path"])
    # a local file of another index is not joined to this one
    other = tmp_path / "other" / "index.parquet"
    build_index(src / FOLDER / "odd", other, salt=SALT)
    local_path(out).write_bytes(local_path(other).read_bytes())
    with pytest.raises(Exception, match="local file") as info:
        read_index(out)
    assert "\n" not in str(info.value)
    assert run_index(src, out, salt=SALT).read == 5


def test_the_synthetic_export_leaves_no_file_name_in_the_index(small_index: Path, small_export: Path) -> None:
    frame = read_index(small_index)
    names = [Path(p).name for p in frame["path"]]
    uid_named = [n.removesuffix(".dcm") for n in names if re.fullmatch(r"[0-9.]{20,}(\.dcm)?", n)]
    assert len(uid_named) > 5  # the export names some files by SOP Instance UID
    phi = json.loads((small_export / "phi.json").read_text(encoding="utf-8"))
    text = _shareable_text(small_index)
    for value in [*uid_named, *frame["path"], str(small_export), *phi]:
        assert value.lower() not in text, value


# ---- the scrubber itself -----------------------------------------------------------------------


def test_scrub_ignores_case_and_separators_and_spares_short_and_inner_words() -> None:
    identity = {"PatientName": "DOE^JOHN", "PatientID": "PID12345", "PatientBirthDate": "19800201",
                "StudyInstanceUID": "1.2.840.99.7", "SOPInstanceUID": "1.2.3.4.5.6"}
    texts = ["Doe, John 01.02.1980", "johndoe", "id PID-123-45 / 1980-02-01 / 02/01/1980", "DOEJOHN study 1_2_840_99_7",
             "John Doherty", "img 1.2.3.4.5.6", "CT CHEST", None]
    assert scrub_texts(texts, identity) == (
        f"{REMOVED} {REMOVED}", REMOVED, f"id {REMOVED} / {REMOVED} / {REMOVED}",
        f"{REMOVED} study {REMOVED}", f"{REMOVED} Doherty", f"img {REMOVED}", "CT CHEST", None)
    # name parts under 3 letters are left alone (they would eat real words), inner words too; the
    # whole name is not
    assert scrub_texts(["LI YU scanner liver", "ANN scanner", "yuli"], {"PatientName": "LI^YU"}) == (
        f"{REMOVED} scanner liver", "ANN scanner", REMOVED)
    assert scrub_texts(["ANN scanner Ann-Marie"], {"PatientName": "ANN"}) == (f"{REMOVED} scanner {REMOVED}-Marie",)
    assert scrub_error("unreadable DICOM value: invalid 'Doe^John' in a/Doe_John/x.dcm", "Doe_John/x.dcm") == (
        f"unreadable DICOM value: invalid {REMOVED} in a/{REMOVED}")


def test_census_rows_are_scrubbed_and_keyed(tmp_path: Path) -> None:
    """A census row built from a QIDO-RS series answer (DICOM JSON, as an archive sends it)."""
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    answer = {
        "0020000D": {"vr": "UI", "Value": [study]}, "0020000E": {"vr": "UI", "Value": [series]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": NAME}]}, "00100020": {"vr": "LO", "Value": [PATIENT_ID]},
        "00100030": {"vr": "DA", "Value": [BIRTH]}, "00080020": {"vr": "DA", "Value": ["20190412"]},
        "00080060": {"vr": "CS", "Value": ["CT"]}, "00180015": {"vr": "CS", "Value": ["CHEST"]},
        "00081030": {"vr": "LO", "Value": [f"CT Thorax Quackenbush, Ottoline {PATIENT_ID}"]},
        "0008103E": {"vr": "LO", "Value": [f"lung 17.04.1953 {series}"]},
        "00181030": {"vr": "LO", "Value": ["OTTOLINE protocol"]},
        "00080070": {"vr": "LO", "Value": [f"ACME {study}"]},
        "00201209": {"vr": "IS", "Value": [3]},
    }
    record = json_to_record(answer)
    from modan_dicom.vocab import Vocabulary

    vocab = Vocabulary.load("radimagenet")
    labels = resolve_labels({"Modality": "CT", "BodyPartExamined": "CHEST", "SeriesDescription": None,
                             "ProtocolName": None, "StudyDescription": None, "AnatomicRegion": [],
                             "SOPClassUID": None}, vocab)
    item = SeriesItem(record, labels, error=f"instance query: HTTP 404 for /studies/{study}/series/{series}")
    item.instances = [json_to_record({"00080018": {"vr": "UI", "Value": [sop]},
                                      "00080008": {"vr": "CS", "Value": ["ORIGINAL"]}})]
    pseudo = Pseudonymizer(SALT.encode())
    secrets = [NAME, "Quackenbush", "Ottoline", PATIENT_ID, *BIRTH_SPELLINGS, study, series, sop]
    for level in ("series", "instance"):
        (row,) = census_rows([item], pseudo, level)
        assert row["StudyDescription"] == f"CT Thorax {REMOVED} {REMOVED}"
        assert row["SeriesDescription"] == f"lung {REMOVED} {REMOVED}"
        assert row["ProtocolName"] == f"{REMOVED} protocol" and row["Manufacturer"] == f"ACME {REMOVED}"
        assert row["error"] == f"instance query: HTTP 404 for /studies/{REMOVED}/series/{REMOVED}"
        assert row["file_key"] == pseudo.file_key(row["path"])
        # the census file: no UID, no name, no address; the local file holds its path and the archive
        out = tmp_path / level / "census.parquet"
        from modan_dicom.ingest.schema import IndexMeta

        meta = IndexMeta(profile="radimagenet", axes=list(vocab.labels), source="https://pacs.example:8042/dicom-web",
                         layout="dicomweb", keep_uids=False, salt_fingerprint=pseudo.fingerprint,
                         vocab_fingerprint="v", version="0", source_key=pseudo.source_key("https://pacs.example"))
        schema = row_schema(len(vocab.labels), EXTRA_FIELDS)
        with open_index_writer(out, meta, extra_fields=EXTRA_FIELDS) as writer:
            writer.write(rows_to_batch([row], schema))
        _assert_clean(out, [*secrets, "pacs.example", row["path"]])
        assert read_index(out)["path"].tolist() == [row["path"]]
        assert read_index_meta(out).source == "https://pacs.example:8042/dicom-web"
    structured = resolve_labels({"Modality": "SR", "BodyPartExamined": None, "SeriesDescription": None,
                                 "ProtocolName": None, "StudyDescription": None, "AnatomicRegion": [],
                                 "SOPClassUID": None}, vocab)
    (row,) = census_rows([SeriesItem(record, structured)], pseudo, "series")
    assert row["status"] == "non_image" and row["error"] == "a non-image SOP class or Modality"  # says why
